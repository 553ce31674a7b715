// The page's words for learners: the data sets' class names (every place an image's label shows), and
// the glossary of every technical term the page uses (a section at the foot of the page, and a tooltip
// plus a link on each term where it appears: `term('kl')`, or `<a class="term" data-term="kl">` in
// index.html). Definitions live here only.
import { h } from './render.js';

export const CLASS_NAMES = {
  mnist: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  fashion: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
};
// A label's name in a data set ('7', 'Ankle boot').
export const className = (data, y) => (CLASS_NAMES[data] || CLASS_NAMES.mnist)[y] ?? String(y);
// A label as words: 'digit 7', 'Ankle boot'.
export const labelText = (data, y) => (data === 'fashion' ? className(data, y) : `digit ${y}`);
// What the data set's images are called.
export const itemsWord = (data) => (data === 'fashion' ? 'images' : 'digits');

// key -> [the term as shown, its definition]. Kept short: one or two sentences a student can read in a
// tooltip.
export const GLOSSARY = {
  autoencoder: ['autoencoder', 'A network trained to rebuild its input after squeezing it through a narrow middle layer (the code). What it keeps there is what it learned matters.'],
  code: ['code / latent', 'The few numbers in the middle of an autoencoder that describe one image. "Latent space" is the space of all codes.'],
  vae: ['VAE', 'Variational autoencoder: the encoder gives a whole distribution (a mean and a spread) for each image, and training keeps these close to a simple prior, so every point of the latent space decodes to something sensible.'],
  prior: ['prior', 'The distribution codes are expected to follow before seeing any image: N(0, I) for a VAE, a learned PixelCNN for the VQ-VAE\'s codes. Sampling from it makes new images.'],
  posterior: ['posterior', 'The distribution q(z|x) of codes the VAE\'s encoder gives one image: a mean and a standard deviation per latent dimension.'],
  reparam: ['reparameterisation trick', 'Writing a random code as z = mean + sd × noise, so the noise is an input and gradients can flow through the mean and the spread.'],
  bce: ['BCE', 'Binary cross-entropy: how surprised the decoder is by the real pixels, treating each pixel as a coin flip with the predicted probability of ink. Summed over the 784 pixels, in nats; lower is better.'],
  mse: ['MSE', 'Squared error: the sum over pixels of (reconstruction − input)². The VQ-VAE is trained on it; lower is better.'],
  kl: ['KL', 'Kullback–Leibler divergence: how far the encoder\'s distribution for an image is from the prior N(0, I), in nats. The VAE pays it so its codes fill the latent space without holes.'],
  elbo: ['ELBO / loss', 'A VAE\'s loss is BCE + KL, the negative evidence lower bound: a bound on how many nats the model needs to describe an image.'],
  beta: ['β (beta)', 'A weight on the KL term: β > 1 pushes codes towards the prior (smoother, blurrier); in a VQ-VAE, "commitment beta" weights the commitment term.'],
  nats: ['nats', 'The unit of information with natural logarithms: 1 nat ≈ 1.44 bits. Losses per image are in nats.'],
  vq: ['vector quantisation', 'Replacing each encoder output vector by the nearest of K codebook vectors, so an image becomes a grid of code numbers.'],
  codebook: ['codebook', 'The VQ-VAE\'s K learned code vectors. Each tile in the VQ panel shows the average patch of test images under the cells that got that code.'],
  commitment: ['commitment', 'The VQ-VAE\'s term β·‖encoder output − its chosen code‖²: it keeps the encoder close to the codes it picks, so the codebook can follow.'],
  ema: ['EMA', 'Exponential moving average: a VQ-VAE can learn its codebook by moving each code towards the average of the vectors assigned to it (decay γ), instead of by a loss.'],
  perplexity: ['perplexity', 'exp(entropy) of how often each code is used: the number of equally used codes that would give the same spread. 64 if all 64 codes were used equally, 1 if only one were.'],
  deadcode: ['dead code', 'A codebook vector no image uses: it wastes capacity. Training can restart dead codes at a recent encoder output.'],
  pixelcnn: ['PixelCNN', 'A network that predicts each cell of a grid from the cells before it (left to right, top to bottom). Over the VQ-VAE\'s codes it is the prior that samples new code grids.'],
  temperature: ['temperature', 'Scales the randomness of sampling: below 1 safer, more typical samples; above 1 more varied and stranger ones.'],
  epoch: ['epoch, batch, lr', 'An epoch is one pass over the training set; a batch the images of one step; lr (learning rate) the size of each step of the Adam optimiser.'],
};

// An inline term: its words (or `text`), a tooltip with the definition, a link to the glossary.
export function term(key, text) {
  const [name, definition] = GLOSSARY[key];
  return h('a', { class: 'term', href: `#glossary-${key}`, title: definition, 'data-term': key }, text ?? name);
}

// Fills the glossary section, and gives every `a.term[data-term]` already in the page (index.html) its
// tooltip and link.
export function initGlossary() {
  const list = document.getElementById('glossary-list');
  if (list) {
    list.replaceChildren(...Object.entries(GLOSSARY).flatMap(([key, [name, definition]]) => [
      h('dt', { id: `glossary-${key}` }, name), h('dd', {}, definition)]));
  }
  for (const a of document.querySelectorAll('a.term[data-term]')) {
    const entry = GLOSSARY[a.dataset.term];
    if (!entry) continue;
    a.title = entry[1];
    a.href = `#glossary-${a.dataset.term}`;
  }
}
