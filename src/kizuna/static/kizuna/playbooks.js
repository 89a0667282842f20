/* Charts of a playbook's effect page: data from the page's json_script, Chart.js vendored.
   Runs by month (acted on and held out, stacked) and the outcome rate of each group with its
   95% interval drawn as a floating bar behind the point. */
(function () {
  "use strict";
  var source = document.getElementById("effect-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);

  var months = document.getElementById("effect-months-chart");
  if (months && data.months.length) {
    new window.Chart(months, {
      type: "bar",
      data: {
        labels: data.months,
        datasets: [
          { label: data.labels.acted, data: data.acted, backgroundColor: "#2e86de", stack: "runs" },
          { label: data.labels.held_out, data: data.held_out, backgroundColor: "#95a5a6", stack: "runs" }
        ]
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  var outcome = document.getElementById("effect-outcome-chart");
  if (outcome && data.outcome.length) {
    var labels = data.outcome.map(function (row) { return row.label + " (n=" + row.n + ")"; });
    new window.Chart(outcome, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          {
            type: "bar",
            label: data.labels.interval,
            data: data.outcome.map(function (row) { return row.low === null ? null : [row.low, row.high]; }),
            backgroundColor: "rgba(46, 134, 222, 0.25)",
            borderColor: "#2e86de",
            borderWidth: 1,
            barPercentage: 0.4,
            order: 2
          },
          {
            type: "line",
            label: data.labels.rate,
            data: data.outcome.map(function (row) { return row.value; }),
            showLine: false,
            pointRadius: 6,
            pointBackgroundColor: "#c0392b",
            borderColor: "#c0392b",
            order: 1
          }
        ]
      },
      options: {
        indexAxis: "x",
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { min: 0, max: 100, ticks: { callback: function (value) { return value + "%"; } } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                var raw = item.raw;
                if (raw === null) { return item.dataset.label + ": —"; }
                if (Array.isArray(raw)) { return item.dataset.label + ": " + raw[0] + "% – " + raw[1] + "%"; }
                return item.dataset.label + ": " + raw + "%";
              }
            }
          }
        }
      }
    });
  }
})();
