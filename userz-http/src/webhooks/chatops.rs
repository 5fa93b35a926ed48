//! Pure parsing of Slack and Discord chat-ops payloads into [`ChatRequest`]s.
//!
//! A chat-ops action names a feedback report and what to do with it. The
//! button value (Slack `actions[].value`, Discord `data.custom_id`) or the
//! slash-command text is `<action>:<feedback id>` (or `<action> <feedback id>`
//! in a slash command), where `<action>` is `queue` or `archive` and the id is
//! the `fb_…` form (a bare UUID is accepted too). Anything else is refused
//! with `invalid_body` naming the field.

use serde_json::Value;
use userz_core::ids::FeedbackId;

use crate::error::ApiError;

/// What a chat user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatAction {
    /// Queue a run (`FeedbackCommand::Queue`).
    Queue,
    /// Archive the report (`FeedbackCommand::Archive`).
    Archive,
}

impl ChatAction {
    /// The wire name (`queue`, `archive`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChatAction::Queue => "queue",
            ChatAction::Archive => "archive",
        }
    }
}

/// One parsed chat-ops request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatRequest {
    /// Slack `url_verification`: answer with the challenge.
    SlackChallenge(String),
    /// Discord PING (interaction type 1): answer `{"type":1}`.
    DiscordPing,
    /// An action on a report by a chat user.
    Action {
        /// What to do.
        action: ChatAction,
        /// Which report.
        feedback: FeedbackId,
        /// The chat user's id in the integration (Slack `U…`, Discord snowflake).
        user: Option<String>,
    },
    /// A delivery that asks nothing of us (other Slack events, other interaction types).
    Ignored(&'static str),
}

/// Longest accepted action value.
const MAX_VALUE: usize = 200;

/// Parses `<action>:<id>` (or `<action> <id>`, for slash commands).
pub fn parse_action_value(field: &str, value: &str) -> Result<(ChatAction, FeedbackId), ApiError> {
    let bad = |rule: &str, msg: &str| ApiError::invalid_field(field, rule, format!("{field}: {msg}"));
    if value.len() > MAX_VALUE {
        return Err(bad("max_length", "too long"));
    }
    let value = value.trim();
    let (action, id) = value
        .split_once(':')
        .or_else(|| value.split_once(char::is_whitespace))
        .ok_or_else(|| bad("format", "must be `queue:<feedback id>` or `archive:<feedback id>`"))?;
    let action = match action.trim() {
        "queue" => ChatAction::Queue,
        "archive" => ChatAction::Archive,
        _ => return Err(bad("action", "action must be `queue` or `archive`")),
    };
    let feedback = id.trim().parse::<FeedbackId>().map_err(|_| bad("feedback_id", "not a feedback id"))?;
    Ok((action, feedback))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn json(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::invalid_field("body", "json", "body: not JSON"))?;
    if !v.is_object() {
        return Err(ApiError::invalid_field("body", "json", "body: must be a JSON object"));
    }
    Ok(v)
}

/// Parses a Slack request body: a JSON Events API delivery
/// (`url_verification` is answered, other events ignored), an interactivity
/// form (`payload=<json>` with `type: block_actions`), or a slash command
/// form (`command`, `text`, `user_id`).
pub fn parse_slack(content_type: Option<&str>, body: &[u8]) -> Result<ChatRequest, ApiError> {
    let is_form = content_type.is_some_and(|c| c.trim_start().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        let v = json(body)?;
        return match str_at(&v, &["type"]) {
            Some("url_verification") => {
                let challenge = str_at(&v, &["challenge"])
                    .ok_or_else(|| ApiError::invalid_field("challenge", "missing", "challenge: missing"))?;
                Ok(ChatRequest::SlackChallenge(challenge.to_owned()))
            }
            _ => Ok(ChatRequest::Ignored("slack event without an action")),
        };
    }
    let mut payload = None;
    let (mut command, mut text, mut user_id) = (None, None, None);
    for (k, v) in form_urlencoded::parse(body) {
        match k.as_ref() {
            "payload" => payload = Some(v.into_owned()),
            "command" => command = Some(v.into_owned()),
            "text" => text = Some(v.into_owned()),
            "user_id" => user_id = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(payload) = payload {
        let v = json(payload.as_bytes())?;
        if str_at(&v, &["type"]) != Some("block_actions") {
            return Ok(ChatRequest::Ignored("slack interaction other than block_actions"));
        }
        let value = v
            .get("actions")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|a| a.get("value"))
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_field("actions[0].value", "missing", "actions[0].value: missing"))?;
        let (action, feedback) = parse_action_value("actions[0].value", value)?;
        let user = str_at(&v, &["user", "id"]).map(str::to_owned);
        return Ok(ChatRequest::Action { action, feedback, user });
    }
    if command.is_some() {
        let text = text.unwrap_or_default();
        let (action, feedback) = parse_action_value("text", &text)?;
        return Ok(ChatRequest::Action { action, feedback, user: user_id });
    }
    Err(ApiError::invalid_field("payload", "missing", "payload: missing (neither an interaction nor a command)"))
}

/// Parses a Discord interaction: type 1 (PING), type 3 (message component,
/// `data.custom_id` names the action) or type 2 (application command with
/// options `action` and `feedback`); other types are ignored.
pub fn parse_discord(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let v = json(body)?;
    let kind = v
        .get("type")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::invalid_field("type", "missing", "type: missing or not a number"))?;
    let user = str_at(&v, &["member", "user", "id"]).or_else(|| str_at(&v, &["user", "id"])).map(str::to_owned);
    match kind {
        1 => Ok(ChatRequest::DiscordPing),
        3 => {
            let value = str_at(&v, &["data", "custom_id"])
                .ok_or_else(|| ApiError::invalid_field("data.custom_id", "missing", "data.custom_id: missing"))?;
            let (action, feedback) = parse_action_value("data.custom_id", value)?;
            Ok(ChatRequest::Action { action, feedback, user })
        }
        2 => {
            let options = v.pointer("/data/options").and_then(Value::as_array).cloned().unwrap_or_default();
            let opt = |name: &str| {
                options
                    .iter()
                    .find(|o| o.get("name").and_then(Value::as_str) == Some(name))
                    .and_then(|o| o.get("value").and_then(Value::as_str).map(str::to_owned))
            };
            let (Some(action), Some(id)) = (opt("action"), opt("feedback")) else {
                return Err(ApiError::invalid_field(
                    "data.options",
                    "missing",
                    "data.options: needs `action` and `feedback`",
                ));
            };
            let (action, feedback) = parse_action_value("data.options", &format!("{action}:{id}"))?;
            Ok(ChatRequest::Action { action, feedback, user })
        }
        _ => Ok(ChatRequest::Ignored("discord interaction type without an action")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn action_values() {
        let fb = FeedbackId::new();
        assert_eq!(parse_action_value("v", &format!("queue:{fb}")).unwrap(), (ChatAction::Queue, fb));
        assert_eq!(parse_action_value("v", &format!("archive {}", fb.as_uuid())).unwrap(), (ChatAction::Archive, fb));
        for (bad, rule) in [("queue", "format"), ("delete:fb_1", "action"), ("queue:nope", "feedback_id")] {
            let e = parse_action_value("v", bad).unwrap_err();
            assert_eq!(e.details.unwrap()["rule"], rule, "{bad}");
        }
    }

    #[test]
    fn slack_shapes() {
        let fb = FeedbackId::new();
        let c = parse_slack(Some("application/json"), br#"{"type":"url_verification","challenge":"abc"}"#).unwrap();
        assert_eq!(c, ChatRequest::SlackChallenge("abc".into()));
        let payload = json!({"type":"block_actions","user":{"id":"U1"},"actions":[{"value": format!("queue:{fb}")}]});
        let form: String =
            form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        let r = parse_slack(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
        assert_eq!(r, ChatRequest::Action { action: ChatAction::Queue, feedback: fb, user: Some("U1".into()) });
        let form: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("command", "/userz")
            .append_pair("text", &format!("archive {fb}"))
            .append_pair("user_id", "U2")
            .finish();
        let r = parse_slack(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
        assert_eq!(r, ChatRequest::Action { action: ChatAction::Archive, feedback: fb, user: Some("U2".into()) });
    }

    #[test]
    fn discord_shapes() {
        let fb = FeedbackId::new();
        assert_eq!(parse_discord(br#"{"type":1}"#).unwrap(), ChatRequest::DiscordPing);
        let v = json!({"type":3,"member":{"user":{"id":"42"}},"data":{"custom_id": format!("archive:{fb}")}});
        let r = parse_discord(v.to_string().as_bytes()).unwrap();
        assert_eq!(r, ChatRequest::Action { action: ChatAction::Archive, feedback: fb, user: Some("42".into()) });
        let v = json!({"type":2,"user":{"id":"7"},"data":{"options":[{"name":"action","value":"queue"},{"name":"feedback","value": fb.to_string()}]}});
        let r = parse_discord(v.to_string().as_bytes()).unwrap();
        assert_eq!(r, ChatRequest::Action { action: ChatAction::Queue, feedback: fb, user: Some("7".into()) });
        assert!(parse_discord(b"[]").is_err());
    }
}
