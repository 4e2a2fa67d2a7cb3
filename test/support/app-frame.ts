// A page holding only <glassbox-app> (test/support/app-frame.html), for tests that reload the
// page for real (an iframe): ?slot= is its autosave slot, ?notebook= the notebook it opens.
import '../../src/app/app.ts';

const p = new URLSearchParams(location.search);
const el = document.createElement('glassbox-app') as HTMLElement & { autosaveId: string };
el.autosaveId = p.get('slot') ?? 'frame';
document.body.append(el);
