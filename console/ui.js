// Small helpers the views share: building elements, formatting times, the confirmation dialog.

/** An element with attributes (`text` sets its text, `on*` adds listeners) and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, value);
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

export const $ = (selector) => document.querySelector(selector);

/** A Unix time in ms as local date and time, or a dash. */
export function when(ms) {
  return ms == null ? "—" : new Date(ms).toLocaleString();
}

/** A duration in seconds as `3 h 4 min`, `5 min 2 s` or `7 s`. */
export function duration(secs) {
  if (secs == null) return "—";
  const s = Math.max(0, Math.round(secs));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

/** Asks the operator to confirm `question`; resolves true when they do. */
export function confirm(question) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = question;
  return new Promise((resolve) => {
    const done = (answer) => {
      dialog.close();
      ok.removeEventListener("click", yes);
      cancel.removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
      resolve(answer);
    };
    const ok = $("#confirm-ok");
    const cancel = $("#confirm-cancel");
    const yes = () => done(true);
    const no = () => done(false);
    ok.addEventListener("click", yes);
    cancel.addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
    ok.focus();
  });
}

/** Runs `fn` at most once per `ms`, after the last call. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
