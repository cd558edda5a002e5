/* The billing page: the price of another amount of credits, as the server quotes it (card fee included). An
   amount outside the instance's limits is not quoted: the page says what the limits are instead. */
(function () {
  "use strict";

  var input = document.querySelector("[data-quote-input]");
  var output = document.querySelector("[data-quote-output]");
  if (!input || !output) return;
  var timer;

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      if (!input.value) { output.textContent = ""; return; }
      var value = Number(input.value);
      var min = Number(input.min), max = Number(input.max);
      if (!isFinite(value) || value < min || value > max) {
        output.textContent = "Choose from " + input.min + " to " + input.max + " credits.";
        return;
      }
      fetch("/api/v1/agent_topup.php?credits=" + encodeURIComponent(input.value), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (q) {
          output.textContent = q.success
            ? q.price.amount.toFixed(2) + " + " + q.fee.amount.toFixed(2) + " card fee = " + q.charge.amount.toFixed(2) + " " + q.charge.currency.toUpperCase()
            : q.message;
        }, function () { output.textContent = ""; });
    }, 250);
  });
})();
