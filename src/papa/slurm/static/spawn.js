// The spawn page's tabs (no inline code: the Content-Security-Policy
// forbids it).  Both tabs are fieldsets of one form; the hidden one is
// disabled, so only the shown tab's fields are posted (without this script
// both show, and the Simple tab's values come first, which the server uses).
"use strict";

const spawnForm = document.getElementById("spawn-form");
if (spawnForm) {
  const tabField = document.getElementById("spawn-tab");
  const panels = spawnForm.querySelectorAll("[data-panel]");
  const buttons = spawnForm.querySelectorAll("[data-tab]");

  // Simple tab: hide the CPUs, GPUs, runtimes and environments that do not
  // fit the chosen partition (each names the partitions it fits), and
  // move a choice that no longer fits to the first that does.
  const fitPartition = () => {
    const chosen = spawnForm.querySelector('#panel-simple input[name="partition"]:checked');
    const partition = chosen ? chosen.value : "";
    for (const row of spawnForm.querySelectorAll("#panel-simple .choice-row")) {
      if (row.dataset.field === "partition") continue;
      let firstShown = null;
      let checkedHidden = false;
      for (const label of row.querySelectorAll("label[data-partitions]")) {
        const fits = label.dataset.partitions.split(" ").includes(partition);
        label.hidden = !fits;
        const input = label.querySelector("input");
        input.disabled = !fits;
        if (fits && firstShown === null) firstShown = input;
        if (!fits && input.checked) checkedHidden = true;
      }
      if (checkedHidden && firstShown) firstShown.checked = true;
      row.hidden = firstShown === null;
    }
  };

  // Advanced tab: the environment select offers only the environments of
  // the partition chosen there; a choice that no longer fits falls back to
  // the first that does, else to the custom path.
  const fitAdvanced = () => {
    const select = spawnForm.querySelector("#panel-advanced #field-environment_id");
    const partitionField = spawnForm.querySelector("#panel-advanced #field-partition");
    if (!select || !partitionField) return;
    let firstShown = null;
    let selectedHidden = false;
    for (const option of select.querySelectorAll("option[data-partitions]")) {
      const fits = option.dataset.partitions.split(" ").includes(partitionField.value);
      option.hidden = !fits;
      option.disabled = !fits;
      if (fits && firstShown === null) firstShown = option;
      if (!fits && option.selected) selectedHidden = true;
    }
    if (selectedHidden) {
      select.value = firstShown ? firstShown.value : "";
    }
  };

  const show = (tab) => {
    tabField.value = tab;
    for (const panel of panels) {
      const shown = panel.dataset.panel === tab;
      panel.hidden = !shown;
      panel.disabled = !shown;
    }
    for (const button of buttons) {
      button.classList.toggle("active", button.dataset.tab === tab);
      button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    }
    if (tab === "simple") fitPartition();
    else fitAdvanced();
  };

  for (const button of buttons) {
    button.addEventListener("click", () => show(button.dataset.tab));
  }
  spawnForm.addEventListener("change", (event) => {
    if (event.target.name !== "partition") return;
    if (event.target.closest("#panel-advanced")) fitAdvanced();
    else fitPartition();
  });
  show(tabField.value === "advanced" ? "advanced" : "simple");
}
