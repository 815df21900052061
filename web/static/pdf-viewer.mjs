// Shows the document's pages as canvases, drawn by pdf.js: phones cannot show a PDF inside a
// page. Without JavaScript the page has an <iframe> in <noscript>; if anything here fails the
// "Open the PDF" link is still there. Script and worker are served from this site (CSP 'self').
import * as pdfjs from "./vendor/pdfjs/pdf.min.mjs";

const MAX_PIXELS = 4096 * 4096; // keep each canvas within what a phone can hold

const box = document.getElementById("pdf-pages");
if (box) {
  pdfjs.GlobalWorkerOptions.workerSrc = new URL(
    "./vendor/pdfjs/pdf.worker.min.mjs",
    import.meta.url,
  ).href;
  show(box).catch((error) => {
    console.warn("PDF preview failed", error);
    box.dataset.state = "failed";
    box.removeAttribute("aria-busy");
    box.querySelectorAll("canvas").forEach((canvas) => canvas.remove());
    // The page gives its texts in the reader's language (data-failed, data-page-label).
    status(box, box.dataset.failed || "The document could not be shown here.");
  });
}

function status(box, text) {
  const line = box.querySelector(".pdf-status");
  if (line) line.textContent = text;
}

async function show(box) {
  box.hidden = false;
  box.setAttribute("aria-busy", "true");
  const task = pdfjs.getDocument({ url: box.dataset.src, isEvalSupported: false });
  const doc = await task.promise;
  const pages = [];
  for (let n = 1; n <= doc.numPages; n++) {
    const page = await doc.getPage(n);
    const base = page.getViewport({ scale: 1 });
    const canvas = document.createElement("canvas");
    canvas.className = "pdf-page";
    canvas.setAttribute("role", "img");
    const label = box.dataset.pageLabel || "Page {n} of {total}";
    canvas.setAttribute("aria-label", label.replace("{n}", n).replace("{total}", doc.numPages));
    canvas.style.aspectRatio = `${base.width} / ${base.height}`;
    box.appendChild(canvas);
    pages.push({ page, canvas, width: 0, task: null });
  }
  status(box, doc.numPages === 1 ? "1 page" : `${doc.numPages} pages`);

  // Draw pages as they come near the screen; redraw them when the width changes (rotation).
  const visible = new Set();
  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        const item = pages.find((p) => p.canvas === entry.target);
        if (entry.isIntersecting) {
          visible.add(item);
          draw(item);
        } else {
          visible.delete(item);
        }
      }
    },
    { rootMargin: "400px 0px" },
  );
  pages.forEach((item) => observer.observe(item.canvas));
  let timer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(timer);
    timer = setTimeout(() => visible.forEach(draw), 200);
  });
  await draw(pages[0]);
  box.dataset.state = "ready";
  box.removeAttribute("aria-busy");
}

async function draw(item) {
  const width = item.canvas.clientWidth;
  if (!width || width === item.width) return;
  item.width = width;
  const base = item.page.getViewport({ scale: 1 });
  let scale = (width * Math.min(window.devicePixelRatio || 1, 2)) / base.width;
  scale = Math.min(scale, Math.sqrt(MAX_PIXELS / (base.width * base.height)));
  const viewport = item.page.getViewport({ scale });
  if (item.task) item.task.cancel();
  item.canvas.width = Math.floor(viewport.width);
  item.canvas.height = Math.floor(viewport.height);
  item.task = item.page.render({ canvas: item.canvas, viewport });
  try {
    await item.task.promise;
    item.canvas.dataset.rendered = "true";
  } catch (error) {
    if (!(error instanceof pdfjs.RenderingCancelledException)) throw error;
  }
}
