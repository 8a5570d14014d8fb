//! URLs as they may be shown: RPC providers put API keys in the path (`/v2/<key>`), the query
//! (`?apikey=`) or the user part (`https://user:key@host`), and transport errors print the URL
//! they failed on. Every log line and error message of the binaries passes through
//! [`redact_urls`] on its way out, so a key never reaches a terminal or CloudWatch.

/// `url` with its user part, path and query replaced by `…` where it has them: scheme, host and
/// port stay, which is what a reader needs to tell two endpoints apart.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((_, host)) => (true, host),
        None => (false, authority),
    };
    let hidden = user || !matches!(tail, "" | "/");
    format!("{scheme}://{host}{}", if hidden { "/…" } else { tail })
}

/// `text` with every `http://` and `https://` URL in it redacted ([`redact_url`]).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = ["https://", "http://", "wss://", "ws://"].iter().filter_map(|s| rest.find(s)).min() {
        out.push_str(&rest[..at]);
        let url_len = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | ',' | '>' | '`' | ']'))
            .unwrap_or(rest.len() - at);
        out.push_str(&redact_url(&rest[at..at + url_len]));
        rest = &rest[at + url_len..];
    }
    out.push_str(rest);
    out
}

/// A writer for one log line that redacts URLs ([`redact_urls`]) when it is dropped, then writes
/// the line to `inner`: the binaries' log sink (`with_writer(|| Redacting::new(stderr()))`),
/// since a logging layer writes each event through one writer.
pub struct Redacting<W: std::io::Write> {
    line: Vec<u8>,
    inner: W,
}

impl<W: std::io::Write> Redacting<W> {
    /// A line buffer in front of `inner`.
    pub fn new(inner: W) -> Self {
        Self { line: Vec::new(), inner }
    }
}

impl<W: std::io::Write> std::io::Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: std::io::Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let text = redact_urls(&String::from_utf8_lossy(&self.line));
        // A log sink that cannot be written has nowhere to report it.
        let _ = self.inner.write_all(text.as_bytes()).and_then(|()| self.inner.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_paths_queries_and_user_parts_are_hidden() {
        assert_eq!(redact_url("https://arb-mainnet.g.alchemy.com/v2/SECRETKEY"), "https://arb-mainnet.g.alchemy.com/…");
        assert_eq!(redact_url("https://rpc.example.org?apikey=SECRET"), "https://rpc.example.org/…");
        assert_eq!(redact_url("https://user:SECRET@rpc.example.org/"), "https://rpc.example.org/…");
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact_url("http://127.0.0.1:8545/"), "http://127.0.0.1:8545/");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn every_url_in_a_message_is_redacted() {
        let msg = "RPC: error sending request for url (https://arb.example/v2/KEY123): connection refused; \
                   chain.rpc_url `wss://x.example/ws/KEY456`, and http://127.0.0.1:9/ ok";
        let out = redact_urls(msg);
        assert!(!out.contains("KEY123") && !out.contains("KEY456"), "{out}");
        assert!(out.contains("(https://arb.example/…)") && out.contains("http://127.0.0.1:9/ ok"), "{out}");
    }

    #[test]
    fn the_log_sink_redacts_each_line() {
        use std::io::Write;
        let mut sink = Vec::new();
        {
            let mut w = Redacting::new(&mut sink);
            write!(w, "failed: https://rpc.example/v2/").unwrap();
            writeln!(w, "KEY").unwrap();
        }
        assert_eq!(String::from_utf8(sink).unwrap(), "failed: https://rpc.example/…\n");
    }

    #[test]
    fn a_url_that_ends_the_text_is_redacted_to_its_end() {
        assert_eq!(redact_urls("rpc failed: https://user:pw@rpc.example/v3/KEY"), "rpc failed: https://rpc.example/…");
        assert_eq!(redact_urls("https://rpc.example/v3/KEY"), "https://rpc.example/…");
    }
}
