/* app.js -- improvements to the carepass employer page, which works fully without it (the form
 * posts to /check and the server renders the answer): the share code is formatted as it is typed
 * (ABC-DEF-GHJ), focus moves to the error summary when there is one, its links focus their
 * fields, and everything folded is unfolded for printing. Plain DOM, no framework; nothing is
 * written with innerHTML. */
(function () {
  'use strict';

  /* ABC-DEF-GHJ as it is typed (only when the caret is at the end: editing the middle is left alone) */
  var code = document.getElementById('share-code');
  if (code) {
    code.addEventListener('input', function () {
      if (code.selectionStart !== code.value.length) return;
      var raw = code.value.replace(/[\s-]/g, '').toUpperCase();
      if (!/^[A-Z0-9]{0,9}$/.test(raw)) return;
      var parts = raw.match(/.{1,3}/g) || [];
      var v = parts.join('-');
      if (v !== code.value) code.value = v;
    });
  }

  /* the error summary: focused on load, its links focus the field (GOV.UK's pattern) */
  var summary = document.getElementById('error-summary');
  if (summary) {
    summary.focus();
    var links = summary.querySelectorAll('a[href^="#"]');
    Array.prototype.forEach.call(links, function (a) {
      a.addEventListener('click', function (ev) {
        var target = document.getElementById(a.getAttribute('href').slice(1));
        if (!target) return;
        ev.preventDefault();
        target.focus();
        var group = target.closest('.form-group');
        if (group && group.scrollIntoView) group.scrollIntoView();
      });
    });
  }

  /* printing: everything unfolded (the stylesheet does it too where the browser allows), then folded back */
  var opened = [];
  window.addEventListener('beforeprint', function () {
    opened = [];
    Array.prototype.forEach.call(document.querySelectorAll('details:not([open])'), function (d) {
      d.open = true;
      opened.push(d);
    });
  });
  window.addEventListener('afterprint', function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
  });

  /* a Print button where JavaScript can press it */
  var actions = document.querySelector('.actions');
  if (actions && window.print) {
    var p = document.createElement('p');
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'button button-secondary';
    b.id = 'print-button';
    b.textContent = 'Print or save as PDF';
    b.addEventListener('click', function () { window.print(); });
    p.appendChild(b);
    actions.insertBefore(p, actions.firstChild);
  }
})();
