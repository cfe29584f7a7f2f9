//! A session answered as JSON written piece by piece (`GET` of a session,
//! its JSON export), so a long history is never held whole in memory.

use axum::{
    body::Bytes,
    http::{HeaderValue, header},
    response::Response,
};

use super::{ApiError, conditional::json_bytes};
use crate::{
    domain::{ChatMessage, SessionId},
    store::{MessageChunks, SessionRead},
};

/// The session's JSON written piece by piece: its own fields, then the older
/// messages a chunk (a sealed page) at a time as the store reads them, then
/// the newest ones from the first read — never the whole history in memory.
pub(super) fn stream_session(id: SessionId, read: SessionRead) -> Result<Response, ApiError> {
    use futures::StreamExt as _;
    let mut head =
        serde_json::to_string(&read.summary).map_err(|e| ApiError::Internal(e.into()))?;
    head.pop(); // the closing brace: "messages" goes last
    head.push_str(",\"messages\":[");
    enum Next {
        Head(String),
        Older,
        Newest,
        Done,
    }
    struct State {
        older: Option<MessageChunks>,
        newest: Vec<ChatMessage>,
        wrote: bool,
        id: SessionId,
    }
    impl State {
        fn write(&mut self, out: &mut Vec<u8>, messages: &[ChatMessage]) -> std::io::Result<()> {
            for m in messages {
                if self.wrote {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, m)?;
                self.wrote = true;
            }
            Ok(())
        }
    }
    let etag = read.etag;
    let state = State {
        older: read.older,
        newest: read.newest,
        wrote: false,
        id,
    };
    let chunks = futures::stream::unfold((Next::Head(head), state), |(next, mut st)| async move {
        let mut out = Vec::new();
        let result = match next {
            Next::Head(head) => {
                out.extend_from_slice(head.as_bytes());
                Ok(Next::Older)
            }
            Next::Older => match st.older.as_mut() {
                None => Ok(Next::Newest),
                Some(chunks) => match chunks.next().await {
                    None => Ok(Next::Newest),
                    Some(Ok(messages)) => st.write(&mut out, &messages).map(|()| Next::Older),
                    Some(Err(e)) => {
                        tracing::error!(session_id = %st.id, "streaming a session failed: {e}");
                        Err(std::io::Error::other(e.to_string()))
                    }
                },
            },
            Next::Newest => {
                let newest = std::mem::take(&mut st.newest);
                let written = st.write(&mut out, &newest);
                out.extend_from_slice(b"]}");
                written.map(|()| Next::Done)
            }
            Next::Done => return None,
        };
        Some(match result {
            Ok(next) => (Ok::<_, std::io::Error>(Bytes::from(out)), (next, st)),
            Err(e) => (Err(e), (Next::Done, st)),
        })
    });
    let mut response = json_bytes(axum::body::Body::from_stream(chunks));
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}
