/* The churn model's calibration plot: data from the page's json_script, Chart.js vendored. */
(function () {
  "use strict";
  var source = document.getElementById("calibration-data");
  var canvas = document.getElementById("calibration-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var top = 10;
  data.points.forEach(function (point) {
    top = Math.max(top, point.x, point.y);
  });
  top = Math.min(100, Math.ceil(top / 10) * 10);
  new window.Chart(canvas, {
    type: "scatter",
    data: {
      datasets: [
        {
          label: data.labels.points,
          data: data.points,
          backgroundColor: "#2f5bd3",
          pointRadius: 5
        },
        {
          label: data.labels.perfect,
          data: [{ x: 0, y: 0 }, { x: top, y: top }],
          type: "line",
          borderColor: "#9aa3b2",
          borderDash: [4, 4],
          pointRadius: 0,
          fill: false
        }
      ]
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: {
        x: { min: 0, max: top, title: { display: true, text: data.labels.x } },
        y: { min: 0, max: top, title: { display: true, text: data.labels.y } }
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: function (item) {
              var raw = item.raw;
              return raw.x.toFixed(1) + "% → " + raw.y.toFixed(1) + "%" + (raw.count ? " (n=" + raw.count + ")" : "");
            }
          }
        }
      }
    }
  });
})();
