/* Charts of the KPI dashboard: data from the page's json_script, Chart.js vendored. */
(function () {
  "use strict";
  var source = document.getElementById("kpi-trend-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var lineColors = ["#c0392b", "#2e86de", "#27ae60"];
  var barColors = {
    new_mrr: "#27ae60",
    expansion_mrr: "#2e86de",
    reactivation_mrr: "#8e44ad",
    contraction_mrr: "#f39c12",
    churned_mrr: "#c0392b"
  };

  // A line per rate, in percent; a month whose rate is undefined (null) is a gap, not 0.
  function rateChart(canvas, series, colors) {
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: series.map(function (line, index) {
          return {
            label: line.label,
            data: line.data,
            borderColor: colors[index % colors.length],
            backgroundColor: colors[index % colors.length],
            spanGaps: false,
            tension: 0.2
          };
        })
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { ticks: { callback: function (value) { return value + "%"; } } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) {
                return item.dataset.label + ": " + (item.raw === null ? "—" : item.raw.toFixed(1) + "%");
              }
            }
          }
        }
      }
    });
  }

  var trend = document.getElementById("kpi-trend-chart");
  if (trend) {
    rateChart(trend, data.rates, lineColors);
  }

  var adoption = document.getElementById("adoption-trend-chart");
  if (adoption && data.adoption) {
    rateChart(adoption, data.adoption, ["#27ae60", "#2e86de", "#8e44ad", "#f39c12", "#c0392b"]);
  }

  var movements = document.getElementById("mrr-movements-chart");
  if (movements) {
    var money = new Intl.NumberFormat(document.documentElement.lang || undefined, {
      style: "currency",
      currency: data.currency,
      maximumFractionDigits: 0
    });
    new window.Chart(movements, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.movements.map(function (series) {
          return {
            label: series.label,
            data: series.data,
            backgroundColor: barColors[series.key] || "#7f8c8d",
            stack: "mrr"
          };
        })
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, ticks: { callback: function (value) { return money.format(value); } } }
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: function (item) { return item.dataset.label + ": " + money.format(item.raw); }
            }
          }
        }
      }
    });
  }
})();
