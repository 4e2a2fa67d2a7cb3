// The notebook the app opens the first time (nothing saved, no ?notebook=, no share link).

export const WELCOME = `---
title: Welcome to glassbox
model: stories260K
---
# Welcome to glassbox

A notebook for looking inside a small language model, in your browser. Nothing leaves this page.
Edit the prompt below: its tokens are drawn underneath (hover one for its id and piece), and every
cell under it follows.

\`\`\`prompt
Once upon a time there was a little
\`\`\`

Where does each token look? One layer's attention, its query heads grouped under the key/value
head they share. Click a head to enlarge it; hover a token to follow it through every cell.

\`\`\`attention
layer: 1
\`\`\`

What comes next: the model's distribution over its vocabulary. Move the temperature or the
filters: the model does not run again, only the sampler's arithmetic does.

\`\`\`next-token
\`\`\`

The logit lens reads the residual stream after every layer as if it were the last one.

\`\`\`logit-lens
\`\`\`

New here? **Take the tour** in the banner above, or open a demo: [Tokens](demos/tokens.md),
[Where does the model look?](demos/attention.md), [Induction heads](demos/induction-heads.md),
[The logit lens](demos/logit-lens.md), [Temperature and the sampler chain](demos/sampling.md),
[Inside one block](demos/inside-a-block.md) (all of them, with pictures: the ? button, then Demos).

The loaded model, one block of it drawn with its weight shapes:

\`\`\`model
\`\`\`
`;
