// MSPclaw playbook builder: progressive enhancement of the editor form. Without this file every button posts
// the whole form and the page comes back; with it, the match box answers as the ticket or the triggers are
// typed (the form posted to /playbooks/{id}/match asking for JSON), and choosing a tool shows its arguments.
"use strict";

function builder() {
  const form = document.getElementById("builder");
  const box = document.getElementById("match-result");
  if (!form || !box || !window.fetch) return;
  let timer = null;
  let asked = 0;

  async function check() {
    const mine = ++asked;
    const data = new URLSearchParams(new FormData(form));
    data.delete("do");
    try {
      const response = await fetch(form.dataset.match, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded" },
      });
      if (mine !== asked) return;  // a later answer is on its way
      if (!response.ok) { box.textContent = `The match could not be checked (${response.status}).`; return; }
      const answer = await response.json();
      box.innerHTML = answer.html;  // rendered and escaped by the server
      box.dataset.state = answer.matched ? "yes" : "no";
    } catch (err) {
      if (mine === asked) box.textContent = `The match could not be checked: ${err}`;
    }
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  }

  const live = ["t_subject", "t_body", "t_os", "keywords", "phrases", "negative", "context", "weights"];
  for (const name of live) {
    const field = form.elements.namedItem(name);
    if (field) field.addEventListener("input", soon);
  }
  for (const select of form.querySelectorAll("select.tool")) {
    select.addEventListener("change", () => {
      const show = document.getElementById("show-arguments");
      if (!show) return;
      const step = select.closest("fieldset.step");  // come back to this step, not the top of the page
      if (step) show.formAction = `${form.action.split("#")[0]}#${step.id}`;
      form.requestSubmit(show);
    });
  }
  const subject = form.elements.namedItem("t_subject");
  if (subject && subject.value.trim()) check();
}

document.addEventListener("DOMContentLoaded", builder);
