// The notebook the app opens the first time (nothing saved, no ?notebook=, no share link).

export const WELCOME = `---
title: Welcome to glassbox
model: stories260K
---
# Welcome to glassbox

A notebook for looking inside a small language model, in your browser. Nothing leaves this page.
Edit the prompt below: its tokens are drawn underneath (hover one for its id and piece).

\`\`\`prompt
Once upon a time there was a little
\`\`\`

The loaded model, one block of it drawn with its weight shapes:

\`\`\`model
\`\`\`
`;
