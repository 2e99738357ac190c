/* evalkit static site: render plots, sort and filter tables. No network, no dependencies
   besides the bundled plotly.min.js. Data is read from JSON <script> blocks and from
   data-sort attributes; nothing here builds HTML from strings, so stored text stays text. */
(function () {
  "use strict";

  function renderPlots() {
    var divs = document.querySelectorAll("div.plot[data-figure]");
    if (!divs.length) { return; }
    if (!window.Plotly) {
      divs.forEach(function (div) {
        div.textContent = "plotly.js did not load (assets/plotly.min.js is missing).";
        div.className = "plot note";
      });
      return;
    }
    divs.forEach(function (div) {
      var source = document.getElementById(div.getAttribute("data-figure"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(div, figure.data || [], figure.layout || {},
        { responsive: true, displaylogo: false });
    });
  }

  function sortKey(cell) {
    if (!cell) { return ""; }
    var key = cell.getAttribute("data-sort");
    return key === null ? cell.textContent.trim() : key;
  }

  function isNumber(text) {
    return text !== "" && isFinite(Number(text));
  }

  function sortTable(table, column, button) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keys = rows.map(function (row) { return sortKey(row.cells[column]); });
    var present = keys.filter(function (key) { return key !== ""; });
    var numeric = present.length > 0 && present.every(isNumber);
    var th = button.closest("th");
    var current = th.getAttribute("aria-sort");
    // Numbers start high-to-low (best scores first), text starts A-Z; a second click reverses.
    var descending = current ? current === "ascending" : numeric;
    table.querySelectorAll("th[aria-sort]").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var order = rows.map(function (row, index) { return index; });
    order.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      if (ka === "" || kb === "") {  // missing values last, whatever the direction
        return ka === kb ? a - b : (ka === "" ? 1 : -1);
      }
      var diff = numeric ? Number(ka) - Number(kb) : ka.localeCompare(kb);
      if (descending) { diff = -diff; }
      return diff !== 0 ? diff : a - b;
    });
    order.forEach(function (index) { body.appendChild(rows[index]); });
  }

  function setUpSorting() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("thead button.sort").forEach(function (button) {
        button.addEventListener("click", function () {
          sortTable(table, Number(button.getAttribute("data-column")), button);
        });
      });
    });
  }

  function setUpFilters() {
    document.querySelectorAll("input.table-filter").forEach(function (input) {
      var table = document.getElementById(input.getAttribute("data-table"));
      var count = document.querySelector("span.filter-count[data-table='" + input.getAttribute("data-table") + "']");
      if (!table) { return; }
      function apply() {
        var query = input.value.trim().toLowerCase();
        var rows = table.tBodies[0].rows, visible = 0;
        for (var i = 0; i < rows.length; i++) {
          var show = query === "" || rows[i].textContent.toLowerCase().indexOf(query) !== -1;
          rows[i].hidden = !show;
          if (show) { visible++; }
        }
        if (count) { count.textContent = query === "" ? "" : visible + " of " + rows.length + " rows"; }
      }
      input.addEventListener("input", apply);
      apply();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpSorting();
    setUpFilters();
    renderPlots();
  });
})();
