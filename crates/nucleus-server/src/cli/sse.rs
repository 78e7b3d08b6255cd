//! Reading server-sent events (`text/event-stream`) off a response, event by event.

/// One event: its `event:` name (`message` when it has none) and its `data:` lines joined.
#[derive(Debug, PartialEq)]
pub struct SseEvent {
    pub kind: String,
    pub data: String,
}

pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl EventStream {
    pub fn new(response: reqwest::Response) -> EventStream {
        EventStream { response, buffer: Vec::new() }
    }

    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            while let Some(block) = take_block(&mut self.buffer) {
                if let Some(event) = parse_block(&block) {
                    return Ok(Some(event));
                }
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(err) => anyhow::bail!("the log stream broke off: {err}; run the command again to go on"),
            }
        }
    }
}

/// The first whole block (up to a blank line) in `buffer`, taken out of it.
fn take_block(buffer: &mut Vec<u8>) -> Option<String> {
    let normalized = buffer.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2));
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|at| (at, 4));
    let (at, len) = match (normalized, crlf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let block: Vec<u8> = buffer.drain(..at + len).collect();
    Some(String::from_utf8_lossy(&block[..at]).into_owned())
}

/// An event from one block; comments (keep-alives) and blocks without data are none.
fn parse_block(block: &str) -> Option<SseEvent> {
    let mut kind = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => kind = value.to_owned(),
            "data" => data.push(value),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| SseEvent { kind, data: data.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_events_and_comments_are_skipped() {
        let mut buffer = b": keep-alive\n\nevent: log\nid: 17\ndata: {\"a\":1}\n\nevent: warning\r\ndata: one\r\ndata: two\r\n\r\nevent: end\ndata: gone".to_vec();
        let blocks: Vec<String> = std::iter::from_fn(|| take_block(&mut buffer)).collect();
        let events: Vec<SseEvent> = blocks.iter().filter_map(|b| parse_block(b)).collect();
        assert_eq!(
            events,
            [SseEvent { kind: "log".into(), data: "{\"a\":1}".into() }, SseEvent { kind: "warning".into(), data: "one\ntwo".into() },]
        );
        assert_eq!(buffer, b"event: end\ndata: gone", "an unfinished block waits for more");
    }
}
