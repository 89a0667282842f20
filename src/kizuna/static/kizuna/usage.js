/* Usage analytics pages: the Customer 360 usage charts and the write key's copy button.
   Data comes from the page's json_script; Chart.js (vendored) is loaded on first need, so the
   panel also works when htmx swaps it into Customer 360 (htmx runs this file again each time). */
(function () {
  "use strict";
  var colors = { active_users_7d: "#2e86de", active_users_28d: "#27ae60", events: "#95a5a6" };

  function withChart(src, done) {
    if (typeof window.Chart !== "undefined") {
      done();
      return;
    }
    if (!window.kizunaChartWaiting) {
      window.kizunaChartWaiting = [];
      var script = document.createElement("script");
      script.src = src;
      script.onload = function () {
        var waiting = window.kizunaChartWaiting;
        window.kizunaChartWaiting = null;
        waiting.forEach(function (callback) { callback(); });
      };
      document.head.appendChild(script);
    }
    window.kizunaChartWaiting.push(done);
  }

  function activityChart(canvas, data) {
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: data.series.map(function (series) {
          var isEvents = series.axis === "events";
          return {
            type: isEvents ? "bar" : "line",
            label: series.label,
            data: series.data,
            yAxisID: series.axis,
            borderColor: colors[series.key] || "#7f8c8d",
            backgroundColor: colors[series.key] || "#7f8c8d",
            pointRadius: 0,
            tension: 0.2,
            order: isEvents ? 2 : 1
          };
        })
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { maxTicksLimit: 8 } },
          users: { position: "left", beginAtZero: true, title: { display: true, text: data.axes.users }, ticks: { precision: 0 } },
          events: { position: "right", beginAtZero: true, title: { display: true, text: data.axes.events }, grid: { drawOnChartArea: false }, ticks: { precision: 0 } }
        }
      }
    });
  }

  function featureChart(canvas, data) {
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.features.labels,
        datasets: [{
          label: data.features.label,
          data: data.features.data,
          backgroundColor: data.features.key.map(function (isKey) { return isKey ? "#c0392b" : "#2e86de"; }),
          maxBarThickness: 28
        }]
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } }
      }
    });
  }

  function drawCharts() {
    document.querySelectorAll("canvas[data-usage-chart]:not([data-drawn])").forEach(function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-source"));
      var panel = canvas.closest("[data-chart-src]");
      if (!source || !panel) {
        return;
      }
      canvas.setAttribute("data-drawn", "pending");
      withChart(panel.getAttribute("data-chart-src"), function () {
        var data = JSON.parse(source.textContent);
        var draw = canvas.getAttribute("data-usage-chart") === "features" ? featureChart : activityChart;
        draw(canvas, data);
        canvas.setAttribute("data-drawn", "yes");
      });
    });
  }

  function bindCopyButtons() {
    document.querySelectorAll("button[data-copy]:not([data-bound])").forEach(function (button) {
      button.setAttribute("data-bound", "yes");
      button.addEventListener("click", function () {
        var text = document.getElementById(button.getAttribute("data-copy")).textContent.trim();
        navigator.clipboard.writeText(text).then(function () {
          button.textContent = button.getAttribute("data-copied");
        });
      });
    });
  }

  drawCharts();
  bindCopyButtons();
})();
