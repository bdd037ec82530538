// The spin-up form: when the plan changes, each region says how many more of that plan it can place now,
// and regions that can place none are hidden. The numbers come with the page (data-sellable).
"use strict";
(function () {
  const plan = document.getElementById("id_plan");
  const region = document.getElementById("id_region");
  if (!plan || !region) return;
  function relabel() {
    for (const option of region.options) {
      if (!option.dataset.sellable) continue;
      const sellable = JSON.parse(option.dataset.sellable);
      const count = plan.value ? sellable[plan.value] || 0 : null;
      option.textContent = count === null ? option.dataset.label : option.dataset.label + ": " + count + " sellable";
      option.hidden = option.disabled = count === 0;
      if (option.selected && option.disabled) region.value = "";
    }
  }
  plan.addEventListener("change", relabel);
})();
