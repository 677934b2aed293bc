// app.js: the dashboard's only script: live refresh and in-page confirmation dialogs. Every page works without it.
(function () {
  'use strict';

  // Live refresh: pages that ask for it (<body data-refresh=N>) fetch themselves again every N seconds
  // and swap in the new <main>; paused while the tab is hidden, a dialog is open or a field has focus.
  var every = parseInt(document.body.getAttribute('data-refresh') || '0', 10);
  function live(ok) {
    var el = document.querySelector('[data-live]');
    if (el) {
      el.classList.toggle('stale', !ok);
      el.textContent = ok ? 'updated ' + new Date().toLocaleTimeString() : 'not updated: server unreachable';
    }
  }
  function busy() {
    var a = document.activeElement;
    return document.hidden || document.querySelector('dialog[open]') ||
      (a && (a.tagName === 'INPUT' || a.tagName === 'SELECT' || a.tagName === 'TEXTAREA'));
  }
  function refresh() {
    if (busy()) { return schedule(); }
    fetch(location.href, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (!r.ok) { throw new Error('HTTP ' + r.status); } return r.text(); })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('main');
        var cur = document.getElementById('main');
        if (fresh && cur && !busy()) { cur.replaceWith(document.adoptNode(fresh)); }
        live(true);
      })
      .catch(function () { live(false); })
      .then(schedule);
  }
  function schedule() { setTimeout(refresh, every * 1000); }
  if (every > 0) { schedule(); }

  // Confirmation in place: a link to a confirmation page (a[data-confirm]) opens that page's content
  // in a modal dialog instead of navigating; its form posts as it would on the page itself.
  document.addEventListener('click', function (ev) {
    var a = ev.target.closest ? ev.target.closest('a[data-confirm]') : null;
    if (!a || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || typeof HTMLDialogElement !== 'function') {
      return;
    }
    ev.preventDefault();
    fetch(a.href, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.text(); })
      .then(function (text) {
        var main = new DOMParser().parseFromString(text, 'text/html').getElementById('main');
        if (!main || !main.querySelector('form.confirm')) { location.href = a.href; return; }
        var dlg = document.createElement('dialog');
        dlg.className = 'confirm';
        while (main.firstChild) { dlg.appendChild(document.adoptNode(main.firstChild)); }
        dlg.addEventListener('close', function () { dlg.remove(); });
        dlg.addEventListener('click', function (e) {
          if (e.target.closest && e.target.closest('[data-cancel]')) { e.preventDefault(); dlg.close(); }
        });
        document.body.appendChild(dlg);
        dlg.showModal();
      })
      .catch(function () { location.href = a.href; });
  });
})();
