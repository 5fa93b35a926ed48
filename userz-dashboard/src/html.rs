//! A tiny HTML builder: every piece of text goes through [`esc`], so feedback
//! text, console logs and comment bodies (all hostile) can never become markup.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// HTML-escapes `s` for element content and double-quoted attribute values.
pub fn esc(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// Text that escapes itself when displayed.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, b) in self.0.bytes().enumerate() {
            let rep = match b {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#x27;",
                b'`' => "&#x60;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + 1;
        }
        f.write_str(&self.0[last..])
    }
}

/// A timestamp as `2026-01-01 12:00:00 UTC` (milliseconds dropped).
pub fn when(t: userz_core::Timestamp) -> String {
    let secs = t.as_millis().div_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => {
            let (y, m, d) = (dt.year(), u8::from(dt.month()), dt.day());
            let (hh, mm, ss) = (dt.hour(), dt.minute(), dt.second());
            format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
        }
        Err(_) => format!("{}ms", t.as_millis()),
    }
}

/// A rendered page: status + body, served as `text/html` with a strict CSP.
#[derive(Debug)]
pub struct Page {
    /// Status.
    pub status: StatusCode,
    /// Full document.
    pub body: String,
}

/// The run page's live-update script: listens to `/runs/{id}/events` and
/// writes what arrives with `textContent` (never as markup).
pub(crate) const RUN_SCRIPT: &str = r#"(function(){
  var root=document.getElementById('run');if(!root||!window.EventSource)return;
  var st=document.getElementById('run-status');if(st.dataset.terminal==='true')return;
  var list=document.getElementById('run-timeline');
  var es=new EventSource('/runs/'+root.dataset.runId+'/events');
  function set(id,v){var e=document.getElementById(id);if(e){e.textContent=v==null?'':String(v);}}
  es.addEventListener('timeline',function(m){var d=JSON.parse(m.data);
    if(list.querySelector('[data-position="'+d.position+'"]'))return;
    var li=document.createElement('li');li.dataset.position=d.position;li.dataset.event=d.event;li.dataset.at=d.at_ms;
    li.textContent=d.at+' '+d.event;var prev=list.lastElementChild;
    if(prev&&prev.dataset.at){var ms=Math.max(0,d.at_ms-Number(prev.dataset.at)),s=document.createElement('span');
      s.className='took';s.textContent=' '+(ms<1000?'+'+ms+' ms':ms<60000?'+'+(ms/1000).toFixed(1)+' s':'+'+Math.floor(ms/60000)+' min '+Math.floor(ms%60000/1000)+' s');li.appendChild(s);}
    list.appendChild(li);});
  es.addEventListener('status',function(m){var d=JSON.parse(m.data);
    st.textContent=d.status;st.dataset.status=d.status;st.dataset.terminal=String(d.terminal);
    set('run-tokens-in',d.tokens_in);set('run-tokens-out',d.tokens_out);set('run-cost',d.cost);
    set('run-guardrail-file',d.guardrail_file);set('run-guardrail-rule',d.guardrail_rule);
    set('run-failure',d.failure);
    var pr=document.getElementById('run-pr-url');if(pr&&d.pr_url){pr.textContent=d.pr_url;pr.setAttribute('href',d.pr_url);}});
  es.addEventListener('end',function(){es.close();root.dataset.live='ended';
    if(document.getElementById('run-diff-section')||!window.fetch||!window.DOMParser)return;
    fetch(location.href,{credentials:'same-origin'}).then(function(r){return r.text();}).then(function(t){
      var d=new DOMParser().parseFromString(t,'text/html').getElementById('run-diff-section');
      if(d&&!document.getElementById('run-diff-section'))root.parentNode.insertBefore(document.adoptNode(d),root.nextSibling);}).catch(function(){});});
  root.dataset.live='connected';
})();
"#;

/// The Content-Security-Policy every page carries: nothing from elsewhere,
/// and the only script allowed is the run page's live-update script, by its
/// SHA-256 — so even
/// markup that slipped past escaping could not run.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(RUN_SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; connect-src 'self'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp()));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222}\
header{background:#223;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center}\
header a{color:#fff}main{padding:1em;max-width:70em}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}\
.status{font-family:monospace;background:#eef;padding:0 .3em}.dup td{color:#666;padding-left:2em}\
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;word-break:break-word}\
form.inline{display:inline}.err{color:#a00}.muted{color:#777}\
#run-diff span{display:block}#run-diff .add{background:#e6ffec}#run-diff .del{background:#ffebe9}\
#run-diff .hunk{color:#57a}#run-diff .file{font-weight:bold}.took{color:#777;font-size:.9em}\
td,code{overflow-wrap:anywhere}.wide{overflow-x:auto}.reason{display:block;color:#555;font-size:.9em}\
.next{color:#7a4b00}.rejected{color:#a00}.sev{font-size:.8em;padding:0 .3em;border-radius:.3em;background:#eee}\
.sev-high{background:#fdd}.sev-low{background:#efe}.received{color:#777;white-space:nowrap}\
header{flex-wrap:wrap}input,select,textarea,button{max-width:100%}\
@media (max-width:40em){main{padding:.5em}table.cards thead{display:none}table.cards tr{display:block;\
border-bottom:1px solid #ccc;padding:.4em 0}table.cards td{display:block;border:0;padding:.1em .3em}\
.dup td{padding-left:1em}.received{white-space:normal}}";

/// Nav context for signed-in pages.
#[derive(Debug, Clone)]
pub struct Nav<'a> {
    /// Signed-in e-mail (display only).
    pub email: &'a str,
    /// Org name.
    pub org_name: &'a str,
    /// Role name.
    pub role: &'a str,
    /// CSRF token for the sign-out form.
    pub csrf: &'a str,
}

/// A full document: `<title>`, optional nav bar, body.
pub fn document(status: StatusCode, title: &str, nav: Option<&Nav<'_>>, body: &str) -> Page {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · Userz</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
    if let Some(n) = nav {
        let _ = write!(
            out,
            "<header><strong>Userz</strong><a href=\"/\" id=\"nav-feedback\">Feedback</a>\
             <a href=\"/settings\" id=\"nav-settings\">Settings</a>\
             <span id=\"nav-org\">{}</span><span class=\"muted\" id=\"nav-user\" data-role=\"{}\">{} ({})</span>\
             <form method=\"post\" action=\"/signout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button id=\"signout\">Sign out</button></form>\
             </header>",
            esc(n.org_name),
            esc(n.role),
            esc(n.email),
            esc(n.role),
            esc(n.csrf)
        );
    }
    let _ = write!(out, "<main>{body}</main></body></html>");
    Page { status, body: out }
}

/// A hidden CSRF input.
pub fn csrf_input(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        let s = esc("<script>alert(\"x\" & 'y')</script>`").to_string();
        assert_eq!(s, "&lt;script&gt;alert(&quot;x&quot; &amp; &#x27;y&#x27;)&lt;/script&gt;&#x60;");
        assert_eq!(esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(when(userz_core::Timestamp::from_millis(1_767_225_600_123)), "2026-01-01 00:00:00 UTC");
    }
}
