//! What a node's `content` (and a little of its `metadata`) says, read
//! leniently: ChatGPT's content is polymorphic, changes without notice, and
//! an odd value in one node must not refuse a whole conversation. Text comes
//! out as text; images and files come out as attachment entries (kind,
//! name, MIME type, asset pointer, size) for the message's metadata, so
//! that they leave a trace instead of vanishing.

use serde_json::{Value, json};

use crate::domain::JsonObject;

/// Content types whose text this import knows where to find (`parts`,
/// `text`, `result`, `content` or `summary`). Another content type with
/// none of those is kept as its JSON, so that it is not lost.
const KNOWN: [&str; 9] = [
    "text",
    "multimodal_text",
    "code",
    "execution_output",
    "tether_browsing_display",
    "tether_quote",
    "sonic_webpage",
    "system_error",
    "reasoning_recap",
];

/// The members, in order, that hold a content's text when it has no
/// `parts`: `text` (code, execution output, quotes, web pages, errors),
/// `result` then `summary` (browsing displays), `content` (recaps).
const TEXT_MEMBERS: [&str; 4] = ["text", "result", "content", "summary"];

/// A node's content read out.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Read {
    /// Its text: the string parts joined with newlines, or the member
    /// holding its text; may be blank.
    pub(super) text: String,
    /// Its images and files, as entries for the metadata's `attachments`.
    pub(super) attachments: Vec<JsonObject>,
}

/// The content's `content_type`, or `""`.
pub(super) fn content_type(content: &Value) -> &str {
    content
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The text and attachments of `content`. Object parts of a
/// `multimodal_text` with a `text` (a voice message's transcription) add
/// their text; the others (`image_asset_pointer`, `audio_asset_pointer`, …)
/// become attachments.
pub(super) fn read(content: &Value) -> Read {
    let mut read = Read::default();
    if let Some(parts) = content.get("parts").and_then(Value::as_array) {
        let mut texts = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                Value::String(text) => texts.push(text.as_str()),
                Value::Object(part) => match part.get("text").and_then(Value::as_str) {
                    Some(text) => texts.push(text),
                    None => read.attachments.push(part_attachment(part)),
                },
                _ => {}
            }
        }
        read.text = texts.join("\n");
    } else if let Some(text) = TEXT_MEMBERS
        .iter()
        .filter_map(|member| content.get(*member).and_then(Value::as_str))
        .find(|text| !text.trim().is_empty())
    {
        read.text = text.to_owned();
    }
    read
}

/// The text to keep of a tool's content that [`read`] found none in: an
/// unknown content type as its JSON (it may hold what matters, in members
/// this import does not know), a known one as nothing.
pub(super) fn unknown_as_json(content: &Value) -> Option<String> {
    (!KNOWN.contains(&content_type(content))).then(|| content.to_string())
}

/// An object part as an attachment: its kind from its `content_type`
/// (`image_asset_pointer` → `image`), and what it says of the asset.
fn part_attachment(part: &JsonObject) -> JsonObject {
    let content_type = part
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let kind = content_type
        .strip_suffix("_asset_pointer")
        .unwrap_or(content_type);
    let mut entry = JsonObject::new();
    entry.insert("kind".into(), json!(kind));
    copy(
        part,
        &mut entry,
        &["asset_pointer", "size_bytes", "width", "height"],
    );
    entry
}

/// Adds the message's `metadata.attachments` (an upload's `id`, `name`,
/// `mime_type` — `mimeType` in older exports — `size`, `width`, `height`)
/// to `attachments`: an upload that is also an image part of the content
/// (its asset pointer is `file-service://<id>` or `sediment://<id>`) adds
/// its name and type to that part's entry rather than a second entry.
pub(super) fn add_uploads(attachments: &mut Vec<JsonObject>, uploads: &Value) {
    for upload in uploads.as_array().into_iter().flatten() {
        let Some(upload) = upload.as_object() else {
            continue;
        };
        let id = upload.get("id").and_then(Value::as_str);
        let same = |entry: &&mut JsonObject| {
            let pointer = entry.get("asset_pointer").and_then(Value::as_str);
            let pointed = pointer.map(|p| p.rsplit_once("://").map_or(p, |(_, id)| id));
            id.is_some() && pointed == id
        };
        let mime_type = upload.get("mime_type").or_else(|| upload.get("mimeType"));
        if let Some(entry) = attachments.iter_mut().find(same) {
            copy(upload, entry, &["name"]);
            if let Some(mime_type) = mime_type {
                entry.insert("mime_type".into(), mime_type.clone());
            }
            continue;
        }
        let is_image = mime_type
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("image/"));
        let mut entry = JsonObject::new();
        entry.insert(
            "kind".into(),
            json!(if is_image { "image" } else { "file" }),
        );
        copy(upload, &mut entry, &["name"]);
        if let Some(mime_type) = mime_type {
            entry.insert("mime_type".into(), mime_type.clone());
        }
        if let Some(size) = upload.get("size") {
            entry.insert("size_bytes".into(), size.clone());
        }
        copy(upload, &mut entry, &["width", "height"]);
        attachments.push(entry);
    }
}

/// Adds the images a code run produced (a chart), which the export lists in
/// the tool node's `metadata.aggregate_result.messages` as
/// `{"message_type":"image","image_url":…,"width":…,"height":…}`.
pub(super) fn add_run_images(attachments: &mut Vec<JsonObject>, aggregate_result: &Value) {
    let messages = aggregate_result.get("messages").and_then(Value::as_array);
    for message in messages.into_iter().flatten() {
        if message.get("message_type").and_then(Value::as_str) != Some("image") {
            continue;
        }
        let Some(message) = message.as_object() else {
            continue;
        };
        let mut entry = JsonObject::new();
        entry.insert("kind".into(), json!("image"));
        if let Some(url) = message.get("image_url") {
            entry.insert("asset_pointer".into(), url.clone());
        }
        copy(message, &mut entry, &["width", "height"]);
        attachments.push(entry);
    }
}

/// The text standing for a message that is only attachments, so that its
/// content is not blank: `[image: photo.png]`, `[file]`, one a line.
pub(super) fn placeholder(attachments: &[JsonObject]) -> String {
    attachments
        .iter()
        .map(|entry| {
            let kind = entry.get("kind").and_then(Value::as_str).unwrap_or("file");
            match entry.get("name").and_then(Value::as_str) {
                Some(name) => format!("[{kind}: {name}]"),
                None => format!("[{kind}]"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Copies the members `names` of `from` that are there (and not null).
fn copy(from: &JsonObject, to: &mut JsonObject, names: &[&str]) {
    for name in names {
        if let Some(value) = from.get(*name).filter(|v| !v.is_null()) {
            to.insert((*name).into(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> JsonObject {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn text_is_found_where_each_content_type_keeps_it() {
        let text = |content: Value| read(&content).text;
        assert_eq!(
            text(json!({ "content_type": "text", "parts": ["a", "b"] })),
            "a\nb"
        );
        assert_eq!(
            text(json!({ "content_type": "code", "language": "python", "text": "1+1" })),
            "1+1"
        );
        assert_eq!(
            text(
                json!({ "content_type": "tether_browsing_display", "result": "", "summary": "s" })
            ),
            "s"
        );
        assert_eq!(
            text(json!({ "content_type": "reasoning_recap", "content": "Thought for 4s" })),
            "Thought for 4s"
        );
        // A voice message: the transcription is text.
        assert_eq!(
            text(json!({ "content_type": "multimodal_text",
                         "parts": [{ "content_type": "audio_transcription", "text": "hallo" }] })),
            "hallo"
        );
        let spinner = json!({ "content_type": "tether_browsing_display", "result": "",
                              "summary": "", "assets": null });
        assert_eq!(read(&spinner), Read::default());
        assert_eq!(unknown_as_json(&spinner), None);
        let unknown = json!({ "content_type": "app_pairing_content", "app": "x" });
        assert_eq!(
            unknown_as_json(&unknown).as_deref(),
            Some(r#"{"app":"x","content_type":"app_pairing_content"}"#)
        );
    }

    #[test]
    fn images_and_uploads_become_one_entry_each() {
        let content = json!({ "content_type": "multimodal_text", "parts": [
            { "content_type": "image_asset_pointer", "asset_pointer": "sediment://file_00aa",
              "size_bytes": 48029, "width": 1024, "height": 768, "fovea": null, "metadata": {} },
            "what is this?",
        ] });
        let mut read = read(&content);
        assert_eq!(read.text, "what is this?");
        let uploads = json!([
            { "id": "file_00aa", "name": "board.jpg", "mime_type": "image/jpeg", "size": 48029 },
            { "id": "file-7Q", "name": "notes.pdf", "mimeType": "application/pdf", "size": 1200,
              "file_token_size": 300 },
        ]);
        add_uploads(&mut read.attachments, &uploads);
        assert_eq!(
            read.attachments,
            [
                object(
                    json!({ "kind": "image", "asset_pointer": "sediment://file_00aa",
                               "size_bytes": 48029, "width": 1024, "height": 768,
                               "name": "board.jpg", "mime_type": "image/jpeg" })
                ),
                object(json!({ "kind": "file", "name": "notes.pdf",
                               "mime_type": "application/pdf", "size_bytes": 1200 })),
            ]
        );
        assert_eq!(
            placeholder(&read.attachments),
            "[image: board.jpg]\n[file: notes.pdf]"
        );
        // Odd values are passed over, not refused.
        add_uploads(&mut read.attachments, &json!("not a list"));
        add_uploads(&mut read.attachments, &json!([1, null]));
        assert_eq!(read.attachments.len(), 2);
    }

    #[test]
    fn a_run_leaves_its_charts() {
        let mut attachments = Vec::new();
        add_run_images(
            &mut attachments,
            &json!({ "status": "success", "messages": [
                { "message_type": "image", "image_url": "file-service://file-qq", "width": 1415,
                  "height": 1101, "sender": "server" },
                { "message_type": "stream", "text": "ignored" },
            ] }),
        );
        assert_eq!(
            attachments,
            [object(
                json!({ "kind": "image", "asset_pointer": "file-service://file-qq",
                            "width": 1415, "height": 1101 })
            )]
        );
        assert_eq!(placeholder(&attachments), "[image]");
    }
}
