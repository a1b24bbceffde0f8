/* app.js -- the carepass employer page: check a passport by share code and date of birth.
 * Plain DOM, no framework; everything shown is set with textContent (never innerHTML). */
(function () {
  'use strict';

  var form = document.getElementById('check-form');
  var summary = document.getElementById('error-summary');
  var summaryText = document.getElementById('error-summary-text');
  var result = document.getElementById('result');
  var lastRequest = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function clearErrors() {
    summary.hidden = true;
    summaryText.textContent = '';
    ['code-group', 'dob-group'].forEach(function (id) {
      document.getElementById(id).classList.remove('form-group-error');
    });
  }

  function showError(message, groupId) {
    summaryText.textContent = message;
    summary.hidden = false;
    if (groupId) document.getElementById(groupId).classList.add('form-group-error');
    summary.focus();
  }

  function pad(n, width) {
    var s = String(n);
    while (s.length < width) s = '0' + s;
    return s;
  }

  /* YYYY-MM-DD from the three boxes, or null */
  function dateOfBirth() {
    var d = document.getElementById('dob-day').value.trim();
    var m = document.getElementById('dob-month').value.trim();
    var y = document.getElementById('dob-year').value.trim();
    if (!/^\d{1,2}$/.test(d) || !/^\d{1,2}$/.test(m) || !/^\d{4}$/.test(y)) return null;
    var day = parseInt(d, 10), month = parseInt(m, 10), year = parseInt(y, 10);
    var t = new Date(Date.UTC(year, month - 1, day));
    if (t.getUTCFullYear() !== year || t.getUTCMonth() !== month - 1 || t.getUTCDate() !== day) return null;
    if (t.getTime() > Date.now()) return null;
    return pad(year, 4) + '-' + pad(month, 2) + '-' + pad(day, 2);
  }

  function statusTag(status) {
    var cls = status === 'valid' ? 'tag-valid' : status === 'expired' ? 'tag-expired'
      : status === 'revoked' ? 'tag-revoked' : 'tag-other';
    return el('strong', 'tag ' + cls, status);
  }

  function formatDate(iso) {
    if (!iso) return 'does not expire';
    var p = iso.split('-');
    var months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
      'September', 'October', 'November', 'December'];
    var m = parseInt(p[1], 10);
    if (p.length !== 3 || !(m >= 1 && m <= 12)) return iso;
    return parseInt(p[2], 10) + ' ' + months[m - 1] + ' ' + p[0];
  }

  var CHECK_NAMES = {
    signature: 'Signed by the register',
    inclusion: 'In the public register',
    revocation: 'Not revoked',
    expiry: 'In date'
  };

  function renderRecord(r) {
    var box = el('div', 'record');
    box.setAttribute('data-index', String(r.index));
    box.setAttribute('data-status', r.status);
    var h = el('h3', null, r.title + ' ');
    h.appendChild(statusTag(r.status));
    box.appendChild(h);
    var dl = el('dl');
    function row(k, v) { dl.appendChild(el('dt', null, k)); dl.appendChild(el('dd', null, v)); }
    row('Qualification code', r.qualification_code);
    row('Training provider', r.provider.name + ' (' + r.provider.id + ')');
    row('Completed', formatDate(r.completion_date));
    row('Valid until', formatDate(r.valid_until));
    if (r.revocation) row('Revoked', formatDate(r.revocation.date) + ': ' + r.revocation.reason);
    row('Register entry', String(r.index));
    box.appendChild(dl);
    var ul = el('ul', 'checks');
    Object.keys(CHECK_NAMES).forEach(function (k) {
      ul.appendChild(el('li', null, CHECK_NAMES[k] + ': ' + (r.checks[k] || 'not established')));
    });
    box.appendChild(ul);
    box.appendChild(el('p', 'statement', r.statement));
    return box;
  }

  function render(p) {
    var overall = document.getElementById('overall');
    var records = document.getElementById('records');
    overall.textContent = '';
    records.textContent = '';
    var v = p.verification;
    var allValid = p.records.every(function (r) { return r.status === 'valid'; });
    overall.className = 'panel ' + (v.authentic && allValid ? 'panel-ok' : 'panel-bad');
    overall.appendChild(el('p', null, v.statement));
    overall.appendChild(el('p', 'hint', 'Checked on ' + formatDate(p.checked_on) +
      '. This share code can be used until ' + p.share_code.expires_at.replace('T', ' ').replace('Z', ' UTC') + '.'));
    if (p.records.length === 0) records.appendChild(el('p', null, 'The worker shared no records with this code.'));
    p.records.forEach(function (r) { records.appendChild(renderRecord(r)); });
    document.getElementById('download-status').textContent = '';
    form.hidden = true;
    result.hidden = false;
    document.getElementById('result-title').focus();
  }

  function errorMessage(status, body, headers) {
    var code = body && body.error ? body.error.code : '';
    if (status === 404 && code === 'SHARE_CODE_NOT_FOUND')
      return { text: 'No passport matches that share code and date of birth. Check both with the care worker: ' +
        'the code may also have been withdrawn or have expired.', group: 'code-group' };
    if (status === 429) {
      var after = parseInt(headers.get('Retry-After') || '0', 10);
      var mins = Math.max(1, Math.ceil(after / 60));
      return { text: 'Too many checks did not match. Try again in ' + mins + (mins === 1 ? ' minute.' : ' minutes.'), group: null };
    }
    if (status === 400 && body && body.error)
      return { text: body.error.message.charAt(0).toUpperCase() + body.error.message.slice(1) + '.',
        group: body.error.message.indexOf('date_of_birth') >= 0 ? 'dob-group' : 'code-group' };
    return { text: 'The passport could not be checked just now. Try again in a minute.', group: null };
  }

  function post(path, payload) {
    return fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(payload),
      credentials: 'omit',
      cache: 'no-store'
    });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    clearErrors();
    var code = document.getElementById('share-code').value.replace(/[\s-]/g, '').toUpperCase();
    if (!/^[A-Z0-9]{9}$/.test(code)) {
      showError('Enter the share code: 9 letters and numbers, for example ABC-DEF-GHJ.', 'code-group');
      return;
    }
    var dob = dateOfBirth();
    if (dob === null) {
      showError('Enter the date of birth as a real date in the past, for example 27 3 1985.', 'dob-group');
      return;
    }
    var payload = { share_code: code, date_of_birth: dob };
    var employer = document.getElementById('employer').value.trim();
    if (employer) payload.employer = employer;
    var button = document.getElementById('check-button');
    button.disabled = true;
    post('/v1/check', payload).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (body) {
        if (resp.ok && body) {
          lastRequest = payload;
          render(body);
        } else {
          var m = errorMessage(resp.status, body, resp.headers);
          showError(m.text, m.group);
        }
      });
    }).catch(function () {
      showError('The passport could not be checked just now. Try again in a minute.', null);
    }).then(function () { button.disabled = false; });
  });

  document.getElementById('download-button').addEventListener('click', function () {
    var status = document.getElementById('download-status');
    if (!lastRequest) return;
    status.textContent = 'Preparing the bundle...';
    post('/v1/check/bundle', lastRequest).then(function (resp) {
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      return resp.blob();
    }).then(function (blob) {
      var url = URL.createObjectURL(blob);
      var a = document.createElement('a');
      a.href = url;
      a.download = 'passport.carepass';
      document.body.appendChild(a);
      a.click();
      document.body.removeChild(a);
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      status.textContent = 'The passport bundle was downloaded (passport.carepass).';
    }).catch(function () {
      status.textContent = 'The bundle could not be downloaded just now. Try again in a minute.';
    });
  });
})();
