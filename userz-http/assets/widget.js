/* Userz feedback widget (no dependencies). <script src=".../widget.js" data-userz-key="pub_..."
 * data-userz-endpoint="https://server" [data-userz-user-token="..."]></script>, or
 * Userz.init({publicKey, endpoint, userToken}) (token: string, or function returning one or a Promise).
 * UI: open shadow root on div#userz-widget; ids inside start with "userz-feedback-". */
(function () {
  'use strict';
  if (window.Userz && window.Userz.version) return;
  var MAX_LOGS = 50, MAX_MSG = 1000, LEVELS = ['log', 'info', 'warn', 'error', 'debug'];
  var logs = [], config = null, root = null, host = null;

  function cut(s, n) {
    s = String(s);
    if (s.length <= n) return s;
    s = s.slice(0, n);
    var last = s.charCodeAt(n - 1);
    return last >= 0xd800 && last <= 0xdbff ? s.slice(0, n - 1) : s; // never split a surrogate pair
  }
  function show(v) {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return v.stack || v.name + ': ' + v.message;
    try { var j = JSON.stringify(v); return j === undefined ? String(v) : j; } catch (e) { return String(v); }
  }
  function record(level, args) {
    var parts = [];
    for (var i = 0; i < args.length; i++) parts.push(show(args[i]));
    logs.push({ level: level, message: cut(parts.join(' '), MAX_MSG), ts: Date.now() });
    if (logs.length > MAX_LOGS) logs.shift();
  }
  LEVELS.forEach(function (level) {
    var original = console[level];
    if (typeof original !== 'function') return;
    console[level] = function () {
      try { record(level, arguments); } catch (e) { /* never break the host page's logging */ }
      return original.apply(console, arguments);
    };
  });
  window.addEventListener('error', function (e) {
    var where = e.filename ? ' (' + e.filename + ':' + e.lineno + ':' + e.colno + ')' : '';
    record('error', [e.error || e.message || 'error', where]);
  });
  window.addEventListener('unhandledrejection', function (e) {
    record('error', ['Unhandled promise rejection:', e.reason]);
  });

  var CSS =
    ':host{all:initial}' +
    '.uzf-btn{position:fixed;right:20px;bottom:20px;z-index:2147483647;background:#2563eb;color:#fff;border:0;' +
    'border-radius:20px;padding:10px 16px;font:600 14px sans-serif;cursor:pointer}' +
    '.uzf-form{position:fixed;right:20px;bottom:70px;z-index:2147483647;width:320px;background:#fff;color:#111;' +
    'border:1px solid #ccc;border-radius:8px;padding:12px;font:14px system-ui,sans-serif;box-shadow:0 4px 16px #0003;' +
    'display:flex;flex-direction:column;gap:8px}' +
    '.uzf-form[hidden]{display:none}.uzf-form textarea{min-height:90px;font:inherit;resize:vertical}' +
    '.uzf-form label{display:flex;flex-direction:column;gap:2px;font-size:12px;color:#444}' +
    '.uzf-submit{background:#2563eb;color:#fff;border:0;border-radius:4px;padding:8px;cursor:pointer}' +
    '.uzf-submit:disabled{opacity:.6}.uzf-status{font-size:12px;min-height:1em}' +
    '.uzf-status[data-state=error]{color:#b91c1c}.uzf-status[data-state=sent]{color:#15803d}';

  function el(tag, attrs, text) {
    var n = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) n.setAttribute(k, attrs[k]);
    if (text) n.textContent = text;
    return n;
  }
  function labelled(text, control) {
    var l = el('label', {}, text);
    l.appendChild(control);
    return l;
  }
  function $(id) { return root.getElementById(id); }

  function build() {
    host = el('div', { id: 'userz-widget' });
    root = host.attachShadow({ mode: 'open' });
    root.appendChild(el('style', {}, CSS));
    var button = el('button', { id: 'userz-feedback-button', class: 'uzf-btn', type: 'button', 'aria-expanded': 'false' }, 'Feedback');
    var form = el('form', { id: 'userz-feedback-form', class: 'uzf-form', hidden: '', 'aria-label': 'Send feedback' });
    var text = el('textarea', { id: 'userz-feedback-text', name: 'text', maxlength: '8192', required: '', placeholder: 'What went wrong?' });
    var sev = el('select', { id: 'userz-feedback-severity', name: 'severity' });
    ['low', 'medium', 'high'].forEach(function (s) {
      var o = el('option', { value: s }, s);
      if (s === 'medium') o.selected = true;
      sev.appendChild(o);
    });
    var shot = el('input', { id: 'userz-feedback-screenshot', name: 'screenshot', type: 'file', accept: 'image/png,image/jpeg,image/webp' });
    form.appendChild(labelled('Your feedback', text));
    form.appendChild(labelled('Severity', sev));
    form.appendChild(labelled('Screenshot (optional)', shot));
    form.appendChild(el('button', { id: 'userz-feedback-submit', class: 'uzf-submit', type: 'submit' }, 'Send'));
    form.appendChild(el('div', { id: 'userz-feedback-status', class: 'uzf-status', role: 'status', 'aria-live': 'polite' }));
    root.appendChild(button);
    root.appendChild(form);
    button.addEventListener('click', function () {
      form.hidden = !form.hidden;
      button.setAttribute('aria-expanded', String(!form.hidden));
      if (!form.hidden) text.focus();
    });
    form.addEventListener('submit', function (e) { e.preventDefault(); submit(); });
    document.body.appendChild(host);
  }

  function setStatus(state, message, extra) {
    var s = $('userz-feedback-status');
    s.setAttribute('data-state', state);
    s.removeAttribute('data-feedback-id');
    s.removeAttribute('data-error-code');
    for (var k in extra || {}) if (extra[k] != null) s.setAttribute(k, String(extra[k]));
    s.textContent = message;
  }

  function fail(code, message) { var e = new Error(message); e.code = code; return e; }

  function headers() {
    var t = config.userToken;
    return Promise.resolve(typeof t === 'function' ? t() : t).then(function (token) {
      var h = { 'Content-Type': 'application/json', 'X-Userz-Public-Key': config.publicKey };
      if (token) h['X-Userz-User-Token'] = String(token);
      return h;
    });
  }

  function call(path, body, h) {
    return fetch(config.endpoint + path, { method: 'POST', headers: h, body: JSON.stringify(body), credentials: 'omit' })
      .catch(function () { throw fail('network_error', 'Could not reach the feedback server.'); })
      .then(function (res) {
        return res.text().then(function (raw) {
          var data = null;
          try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
          if (!res.ok) {
            var err = data && data.error;
            throw fail((err && err.code) || 'http_' + res.status, (err && err.message) || 'The server answered ' + res.status + '.');
          }
          return data || {};
        });
      });
  }

  function upload(file, h) {
    var type = file.type || 'application/octet-stream';
    return call('/v1/feedback/upload-url', { kind: 'screenshot', contentType: type, byteSize: file.size }, h).then(function (u) {
      var put = {};
      for (var k in u.headers || {}) if (Object.prototype.hasOwnProperty.call(u.headers, k)) put[k] = u.headers[k];
      if (!put['Content-Type'] && !put['content-type']) put['Content-Type'] = type;
      return fetch(u.uploadUrl, { method: 'PUT', headers: put, body: file, credentials: 'omit' })
        .catch(function () { throw fail('upload_failed', 'The screenshot upload could not be sent.'); })
        .then(function (res) {
          if (!res.ok) throw fail('upload_failed', 'The screenshot upload was refused (' + res.status + ').');
          return { key: u.key, kind: 'screenshot', contentType: type, byteSize: file.size };
        });
    });
  }

  function payload(text, severity) {
    var body = {
      text: text,
      severity: severity,
      userAgent: cut(navigator.userAgent || '', 512),
      viewport: {
        w: Math.max(1, Math.round(window.innerWidth || 1)),
        h: Math.max(1, Math.round(window.innerHeight || 1)),
        dpr: Math.min(16, window.devicePixelRatio || 1)
      },
      consoleLogs: logs.slice()
    };
    var url = String(location.href);
    if (/^https?:/.test(url) && url.length <= 2048) body.url = url;
    return body;
  }

  function submit() {
    var text = $('userz-feedback-text').value;
    if (!text.trim()) { setStatus('error', 'Please describe the problem.', { 'data-error-code': 'empty_text' }); return; }
    var button = $('userz-feedback-submit');
    var file = $('userz-feedback-screenshot').files[0];
    var body = payload(text, $('userz-feedback-severity').value);
    button.disabled = true;
    setStatus('sending', 'Sending…');
    headers().then(function (h) {
      return (file ? upload(file, h) : Promise.resolve(null)).then(function (att) {
        if (att) body.attachments = [att];
        return call('/v1/feedback', body, h);
      });
    }).then(function (data) {
      var id = data.id || data.feedbackId || (data.feedback && data.feedback.id) || '';
      setStatus('sent', 'Sent. Thank you!', { 'data-feedback-id': id });
      $('userz-feedback-text').value = '';
      $('userz-feedback-screenshot').value = '';
    }, function (e) {
      setStatus('error', e.message || 'Sending failed.', { 'data-error-code': e.code || 'error' });
    }).then(function () { button.disabled = false; });
  }

  function init(options) {
    if (!options || !/^pub_/.test(options.publicKey || '')) throw new Error('Userz.init: publicKey (pub_...) is required');
    if (!options.endpoint) throw new Error('Userz.init: endpoint is required');
    config = { publicKey: options.publicKey, endpoint: String(options.endpoint).replace(/\/+$/, ''), userToken: options.userToken };
    if (host) return;
    if (document.body) build();
    else document.addEventListener('DOMContentLoaded', build);
  }

  window.Userz = {
    version: '1',
    init: init,
    logs: function () { return logs.slice(); },
    root: function () { return root; }
  };

  var script = document.currentScript;
  if (script && script.getAttribute('data-userz-key')) {
    init({
      publicKey: script.getAttribute('data-userz-key'),
      endpoint: script.getAttribute('data-userz-endpoint') || new URL(script.src, location.href).origin,
      userToken: script.getAttribute('data-userz-user-token') || undefined
    });
  }
})();
