// The app shell's look; colours come from style.css's custom properties (light and dark follow
// prefers-color-scheme), so the cells' shadow roots share them.
import { css } from 'lit';

export const appStyles = css`
  :host { display: block; min-height: 100vh; }
  header { position: sticky; top: 0; z-index: 2; display: flex; gap: 6px; align-items: center; flex-wrap: wrap;
    padding: 8px 16px; background: var(--bg); border-bottom: 1px solid var(--line); }
  .brand { font-weight: 700; margin-right: 10px; }
  .spacer { flex: 1; }
  button.model { max-width: 220px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .group { display: inline-flex; gap: 4px; }
  button, select, .button, input { font: inherit; font-size: 14px; }
  button, .button, select { padding: 4px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: inherit; cursor: pointer; text-decoration: none; }
  button:disabled, select:disabled { opacity: .45; cursor: default; }
  button:focus-visible, .button:focus-visible, select:focus-visible, input:focus-visible, textarea:focus-visible, .cell:focus-visible {
    outline: 2px solid var(--accent); outline-offset: 2px; }
  .badge { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: color-mix(in srgb, var(--accent) 18%, transparent); }
  .save { font-size: 12px; color: var(--muted); min-width: 60px; }
  .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .loading { display: flex; gap: 10px; align-items: center; padding: 6px 16px; font-size: 13px; border-bottom: 1px solid var(--line); }
  .loading progress { width: 240px; }
  .panel { position: relative; margin: 0 auto; max-width: 860px; max-height: 70vh; overflow: auto; padding: 10px 18px 16px; border: 1px solid var(--line); border-top: 0; background: var(--card); border-radius: 0 0 10px 10px; }
  .panel .close { position: absolute; right: 10px; top: 8px; }
  .panel h2 { font-size: 16px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
  dd { margin: 0; }
  kbd { font-family: var(--mono); font-size: 12px; padding: 1px 5px; border: 1px solid var(--line); border-radius: 4px; }
  main { max-width: 860px; margin: 0 auto; padding: 16px 18px 80px; }
  .cell { position: relative; padding: 10px 12px; margin: 8px 0; border-radius: 10px; border: 1px solid transparent; }
  .cell:hover, .cell.selected { border-color: var(--line); }
  .cell[data-kind=prompt], .cell[data-kind=model] { background: color-mix(in srgb, var(--card) 70%, transparent); border-color: var(--line); }
  .cell-tools { position: absolute; right: 8px; top: 6px; display: flex; gap: 4px; opacity: 0; transition: opacity .1s; z-index: 1; }
  .cell:hover .cell-tools, .cell.selected .cell-tools, .cell-tools:focus-within { opacity: 1; }
  .cell-tools button { padding: 1px 7px; font-size: 12px; }
  .prose-edit { width: 100%; box-sizing: border-box; min-height: 120px; font: 14px/1.45 var(--mono); background: var(--card); color: inherit; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
  .problems, .error { color: #c0392b; font-size: 13px; }
  .message, .readonly, .ask { padding: 8px 12px; border-radius: 8px; background: color-mix(in srgb, var(--accent) 10%, transparent); font-size: 14px; }
  .message input { width: min(520px, 70vw); }
  .ask { background: color-mix(in srgb, #d58a00 14%, transparent); }
  .app.over main { outline: 2px dashed var(--accent); outline-offset: -6px; }
  .note { color: var(--muted); }
  /* first run (src/app/first-run.ts): the welcome banner, the tour, the demos gallery */
  .first-run { position: relative; padding: 8px 40px 8px 12px; margin: 8px 0; border-radius: 8px; border: 1px solid var(--line); background: color-mix(in srgb, var(--accent) 8%, transparent); font-size: 14px; }
  .first-run p { margin: 4px 0; }
  .first-run .close { position: absolute; right: 8px; top: 8px; }
  .first-run-buttons { display: flex; gap: 6px; flex-wrap: wrap; }
  .tour-target { outline: 3px solid var(--accent); outline-offset: 2px; }
  .tour { position: fixed; right: 16px; bottom: 16px; z-index: 5; width: min(380px, calc(100vw - 32px)); padding: 10px 14px; border-radius: 10px;
    border: 1px solid var(--line); background: var(--card); box-shadow: 0 6px 24px rgb(0 0 0 / .18); font-size: 14px; }
  .tour h2 { font-size: 16px; margin: 2px 0 6px; }
  .tour-count { margin: 0; font-size: 12px; color: var(--muted); }
  .tour-buttons { display: flex; gap: 6px; justify-content: flex-end; }
  .gallery .cards { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 12px; }
  .gallery .cards a { display: flex; flex-direction: column; gap: 4px; color: inherit; text-decoration: none; padding: 8px; border: 1px solid var(--line); border-radius: 8px; font-size: 13px; }
  .gallery .cards a:hover, .gallery .cards a:focus-visible { border-color: var(--accent); }
  .gallery .cards img { width: 100%; height: auto; aspect-ratio: 8 / 5; object-fit: cover; object-position: top; border-radius: 4px; background: var(--bg); }
`;
