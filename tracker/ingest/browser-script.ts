/**
 * `GET /s.js`: the script advertisers put on their pages (plain ES2017, no dependencies). It keeps the `click_id`
 * the tracking link's redirect put in the landing URL in a first-party cookie, and `window.trk.conversion({...})`
 * posts it with the page's publishable key to `POST /api/v1/track/conversion/browser` on the tracker it was loaded
 * from. Kept as a string (not a file read at start) so the compiled build needs no data file beside it; the
 * real-browser test (./browser.test.ts) runs it.
 *
 * Script tag attributes: `data-key` (the publishable key, required), `data-param` (the landing URL's parameter
 * holding the click id; default `click_id`), `data-days` (cookie lifetime, days, 1..400; default 30, the default
 * attribution window: the pipeline enforces the campaign's own window whatever the cookie's age), `data-cookie-domain`
 * (e.g. `example.com` to share the cookie with subdomains; default the page's host only).
 */
export const BROWSER_SCRIPT = `/* affiliate tracker s.js: conversions from the browser (see the project README, "Browser conversions") */
(function () {
  'use strict';
  var me = document.currentScript;
  var attr = function (n, d) { return (me && me.getAttribute(n)) || d; };
  var base = me && me.src ? new URL(me.src).origin : '';
  var key = attr('data-key', '');
  var param = attr('data-param', 'click_id');
  var days = Math.min(400, Math.max(1, Number(attr('data-days', '30')) || 30));
  var domain = attr('data-cookie-domain', '');
  var NAME = '_trk_cid';
  var UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

  var readCookie = function () {
    var parts = document.cookie.split(';');
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i].trim();
      if (p.indexOf(NAME + '=') === 0) {
        var v = p.slice(NAME.length + 1);
        return UUID7.test(v) ? v : '';
      }
    }
    return '';
  };
  var writeCookie = function (v) {
    document.cookie = NAME + '=' + v + '; Max-Age=' + days * 86400 + '; Path=/; SameSite=Lax' +
      (domain ? '; Domain=' + domain : '') + (location.protocol === 'https:' ? '; Secure' : '');
  };

  // The last click wins: a landing URL with a click id replaces the stored one.
  var landed = new URLSearchParams(location.search).get(param);
  if (landed && UUID7.test(landed)) writeCookie(landed.toLowerCase());

  var clickId = function () { return readCookie(); };

  /**
   * conversion({ goal, amount, currency, event_id }) -> Promise of the tracker's answer
   * ({ decision: 'accepted' | 'duplicate' | 'rejected', conversion_id, event_id }); { decision: 'skipped' } when the
   * visitor has no click id. Rejects with an Error whose code is the tracker's error code.
   */
  var conversion = function (o) {
    o = o || {};
    var cid = clickId();
    if (!cid) return Promise.resolve({ decision: 'skipped', reason: 'no_click_id' });
    var body = JSON.stringify({
      click_id: cid,
      goal: o.goal,
      amount: o.amount === undefined || o.amount === null ? undefined : String(o.amount),
      currency: o.currency,
      event_id: o.event_id,
      customer_id: o.customer_id,
    });
    var url = base + '/api/v1/track/conversion/browser?key=' + encodeURIComponent(key);
    if (typeof fetch !== 'function') {
      // text/plain needs no preflight, so the beacon also leaves with the page.
      var sent = navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], { type: 'text/plain' }));
      return Promise.resolve({ decision: sent ? 'sent' : 'skipped' });
    }
    return fetch(url, {
      method: 'POST',
      mode: 'cors',
      credentials: 'omit',
      keepalive: true,
      headers: { 'Content-Type': 'text/plain' },
      body: body,
    }).then(function (r) {
      return r.json().then(function (j) {
        if (j && j.success) return j.data;
        var e = new Error((j && j.error && j.error.message) || 'conversion refused');
        e.code = (j && j.error && j.error.code) || 'HTTP_' + r.status;
        throw e;
      });
    });
  };

  var api = (window.trk = window.trk || {});
  api.conversion = conversion;
  api.clickId = clickId;
})();
`;
