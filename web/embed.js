// The embeddable component: <latent-lab> on any page (a course's website, on any origin) shows
// LatentLab's panels in an iframe that sizes itself to its content. Attributes are the page's state keys
// (docs/embedding.md lists them all):
//
//   <script type="module" src="https://your.host/latentlab/embed.js"></script>
//   <latent-lab panels="draw,latent" models="ae_2d,vae_2d"></latent-lab>
//   <latent-lab panels="sample" temperature="0.8"><a href="https://your.host/latentlab/">LatentLab</a></latent-lab>
//
// The iframe keeps the page's styles, worker and memory apart from the host page; it needs no
// cross-origin isolation headers. From another origin this file loads only if its server sends
// `Access-Control-Allow-Origin` (scripts/serve.mjs does; docs/embedding.md says how on other hosts):
// the browser refuses a cross-origin module script without it. Whatever the element holds (a link, a
// picture) shows until the script runs, so a host that cannot reach this file still shows something.
// When the page cannot be reached or fails to start, the element says so in place, and fires
// 'latentlab-error' (detail: {message}); once the page runs it fires 'latentlab-ready'.

// How long the framed page may take, after its document has loaded, to say that it runs (its first
// message comes before any model or data is fetched, so a slow network does not trip this).
const HELLO_TIMEOUT_MS = 15000;
// HTML's own attributes are the host's, not state keys.
const OWN = /^(style|class|id|title|hidden|lang|dir|tabindex|slot|part|role|aria-.*|data-.*)$/;

class LatentLabElement extends HTMLElement {
  connectedCallback() {
    if (this.frame) return;
    if (!this.style.display) this.style.display = 'block';
    const page = new URL('index.html', import.meta.url);
    const src = new URL(page);
    for (const { name, value } of this.attributes) if (!OWN.test(name)) src.searchParams.set(name, value);
    src.searchParams.set('embed', '1');
    this.fallback ??= [...this.childNodes];  // the host's content, for a page that cannot run
    this.replaceChildren();
    this.alive = false;
    this.frame = document.createElement('iframe');
    this.frame.src = src.href;
    this.frame.title = this.getAttribute('title') || 'LatentLab: autoencoders you can draw on';
    this.frame.loading = 'lazy';
    this.frame.style.cssText = 'width: 100%; border: 0; display: block; height: 480px; color-scheme: light;';
    this.onMessage = (e) => {
      if (!this.frame || e.source !== this.frame.contentWindow || !e.data || typeof e.data !== 'object') return;
      const { latentlab: what } = e.data;
      if (what === 'hello' || what === 'height') {
        if (!this.alive) { this.alive = true; clearTimeout(this.timer); this.dispatchEvent(new CustomEvent('latentlab-ready')); }
        if (what === 'height' && Number.isFinite(e.data.height)) this.frame.style.height = `${Math.ceil(e.data.height)}px`;
      } else if (what === 'error') {
        this.fail(`LatentLab could not start: ${String(e.data.message)}`, true);
      }
    };
    window.addEventListener('message', this.onMessage);
    // The document loaded (or the browser's error page did): the page must now say it runs.
    this.frame.addEventListener('load', () => {
      clearTimeout(this.timer);
      if (!this.alive) this.timer = setTimeout(() => this.fail(`LatentLab did not start from ${page.href} (the page was not found there, or it could not run)`), HELLO_TIMEOUT_MS);
    });
    this.append(this.frame);
    // A server that cannot be reached at all (offline, a wrong host name) is known at once.
    fetch(src, { method: 'HEAD', mode: 'no-cors', cache: 'no-store' })
      .catch(() => this.fail(`LatentLab cannot be reached at ${page.origin}: the network or that server is down`));
  }

  // Replaces the frame by a message (and the host's own fallback content) in the element's place; a
  // page that already runs is replaced only when it reports its own failure (`always`).
  fail(message, always = false) {
    if (!this.frame || (this.alive && !always)) return;
    clearTimeout(this.timer);
    this.frame.remove();
    const box = document.createElement('div');
    box.setAttribute('role', 'alert');
    box.className = 'latentlab-error';
    box.style.cssText = 'padding: 12px 14px; border: 1px solid #e0a899; border-radius: 8px; background: #fff4f2; color: #8a2108; font: 15px/1.5 system-ui, sans-serif;';
    const link = document.createElement('a');
    link.href = this.frame.src;
    link.target = '_blank';
    link.rel = 'noopener';
    link.textContent = 'open LatentLab in a new tab';
    box.append(`${message}. Try again later, or `, link, '.');
    this.replaceChildren(box, ...this.fallback);
    this.dispatchEvent(new CustomEvent('latentlab-error', { detail: { message } }));
  }

  disconnectedCallback() {
    window.removeEventListener('message', this.onMessage);
    clearTimeout(this.timer);
    this.frame?.remove();
    this.frame = null;
  }
}
if (!customElements.get('latent-lab')) customElements.define('latent-lab', LatentLabElement);
