// The embeddable component: <latent-lab> on any page (a course's website) shows LatentLab's panels in
// an iframe that sizes itself to its content. Attributes are the page's state keys (see state.js):
//
//   <script type="module" src="https://your.host/latentlab/embed.js"></script>
//   <latent-lab panels="draw,latent" models="ae_2d,vae_2d"></latent-lab>
//   <latent-lab panels="sample" temperature="0.8"></latent-lab>
//
// The iframe keeps the page's styles, worker and memory apart from the host page; it needs no
// cross-origin isolation headers.
class LatentLabElement extends HTMLElement {
  connectedCallback() {
    if (this.frame) return;
    const src = new URL('index.html', import.meta.url);
    for (const { name, value } of this.attributes) if (name !== 'style' && name !== 'class') src.searchParams.set(name, value);
    src.searchParams.set('embed', '1');
    this.frame = document.createElement('iframe');
    this.frame.src = src.href;
    this.frame.title = this.getAttribute('title') || 'LatentLab: autoencoders you can draw on';
    this.frame.loading = 'lazy';
    this.frame.style.cssText = 'width: 100%; border: 0; display: block; height: 480px; color-scheme: light;';
    this.onMessage = (e) => {
      if (e.source === this.frame.contentWindow && e.data && e.data.latentlab === 'height') this.frame.style.height = `${Math.ceil(e.data.height)}px`;
    };
    window.addEventListener('message', this.onMessage);
    this.append(this.frame);
  }
  disconnectedCallback() {
    window.removeEventListener('message', this.onMessage);
    this.frame?.remove();
    this.frame = null;
  }
}
if (!customElements.get('latent-lab')) customElements.define('latent-lab', LatentLabElement);
