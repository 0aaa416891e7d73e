// The dispatch console's only script: no build step, no inline code (the
// Content-Security-Policy forbids it).
"use strict";

// Ask before forms marked data-confirm are posted.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Live parts: an element with data-live is fetched again (this same page,
// rendered by the server and escaped there) whenever zeo reports a commit
// on /api/events (or its data-events stream, /api/jobs/events for papa's
// jobs, sends a change).  Commits arriving while a fetch is on the way, or within
// GAP milliseconds of the last, make one more fetch, not one each: a busy
// queue commits many times a second.
const GAP = 250;
const live = document.querySelector("[data-live]");
if (live && window.EventSource) {
  let fetching = false;
  let again = false;
  const refresh = async () => {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const reply = await fetch(window.location.href, { headers: { Accept: "text/html" } });
      if (reply.ok) {
        const page = new DOMParser().parseFromString(await reply.text(), "text/html");
        const fresh = page.querySelector("[data-live]");
        const current = document.querySelector("[data-live]");
        if (fresh && current) {
          current.replaceWith(document.importNode(fresh, true));
        }
      }
    } finally {
      window.setTimeout(() => {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      }, GAP);
    }
  };
  const events = new EventSource(live.dataset.events || "/api/events");
  events.addEventListener("commit", refresh);
  events.addEventListener("change", refresh);
  // Commits made between the page's rendering and the stream's opening
  // (or while it was reconnecting) send no event: fetch once it is open.
  events.addEventListener("ready", refresh);
}

// Parts whose state is not in zeo (papa's processes and jobs, Slurm's
// partitions) carry data-refresh="MS": fetched again that often, as above.
for (const part of document.querySelectorAll("[data-refresh][id]")) {
  const every = Number(part.dataset.refresh) || 2000;
  window.setInterval(async () => {
    const reply = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (reply.ok) {
      const page = new DOMParser().parseFromString(await reply.text(), "text/html");
      const fresh = page.getElementById(part.id);
      const current = document.getElementById(part.id);
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
      }
    }
  }, every);
}

// A run page's output tails: /api/runs/ID/tails sends a "tail" event for
// each attempt whose committed tail changed; it is written (as text, never
// as HTML) into the <pre data-tail="MESSAGE.ATTEMPT"> of that attempt.
const TAIL_LINES = 200;
const tails = document.querySelector("[data-tails]");
if (tails && window.EventSource) {
  new EventSource(tails.dataset.tails).addEventListener("tail", (event) => {
    const entry = JSON.parse(event.data);
    const key = `${entry.message}.${entry.attempt}`;
    for (const block of document.querySelectorAll("pre[data-tail]")) {
      if (block.dataset.tail === key) {
        block.textContent = entry.tail.split("\n").slice(-TAIL_LINES).join("\n");
      }
    }
  });
}
