//! The agent prompt: untrusted sections inside the wrapper.

/// Builds the agent's user prompt from labelled untrusted sections.
pub(crate) fn build(sections: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (label, text) in sections {
        out.push_str(&format!("<UNTRUSTED_USER_REPORT section=\"{label}\">\n{text}\n</UNTRUSTED_USER_REPORT>\n"));
    }
    out
}
