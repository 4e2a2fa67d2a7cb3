// The page's entry point: the notebook app, or the model-file inspector at ?inspect.
const inspect = new URLSearchParams(location.search).has('inspect');
const tag = inspect ? 'glassbox-inspector' : 'glassbox-app';
void (inspect ? import('./inspector.ts') : import('./app.ts')).then(() => {
  document.body.replaceChildren(document.createElement(tag));
});
export {};
