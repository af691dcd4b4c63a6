//! The conversation path: prompt, history, commands, allow-list, long answers.

use telegram_bot::app::{HELP_TEXT, RESET_TEXT, START_TEXT};
use telegram_bot::testing::RouterReply;

use crate::support::{API_KEY, Harness, WAIT};

#[tokio::test]
async fn a_text_message_goes_to_the_router_and_the_answer_comes_back() {
    let harness = Harness::start(&[
        ("ROUTER_MODEL", "tenant-model-7"),
        ("SYSTEM_PROMPT", "You are the ACME helpdesk."),
    ])
    .await;
    harness.telegram.push_text(42, "How late are you open?");
    let sent = harness.telegram.wait_for_sent(1, WAIT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].chat_id, 42);
    assert_eq!(sent[0].text, "echo: How late are you open?");

    let completions = harness.router.completions();
    assert_eq!(completions.len(), 1);
    let completion = &completions[0];
    assert_eq!(completion.model, "tenant-model-7");
    assert_eq!(completion.authorization.as_deref(), Some(format!("Bearer {API_KEY}").as_str()));
    assert_eq!(
        completion.messages,
        [
            ("system".to_owned(), "You are the ACME helpdesk.".to_owned()),
            ("user".to_owned(), "How late are you open?".to_owned()),
        ]
    );
    harness.bot.wait_for_log("\"answered\"").await;
    harness.bot.assert_logs_hold_no_secret_or_text(&["How late are you open?", "ACME helpdesk"]);
}

#[tokio::test]
async fn history_is_bounded_per_chat_and_reset_clears_it() {
    let harness = Harness::start(&[("HISTORY_TURNS", "2")]).await;
    for index in 1..=4 {
        harness.telegram.push_text(7, &format!("question {index}"));
        harness.telegram.wait_for_sent(index, WAIT).await;
    }
    // Another chat has its own history.
    harness.telegram.push_text(8, "other chat");
    harness.telegram.wait_for_sent(5, WAIT).await;

    let completions = harness.router.completions();
    let fourth = &completions[3].messages;
    let contents: Vec<&str> = fourth.iter().map(|(_, content)| content.as_str()).collect();
    // The system prompt, the last two exchanges, the new question.
    assert_eq!(contents.len(), 6, "{contents:?}");
    assert_eq!(
        &contents[1..],
        ["question 2", "echo: question 2", "question 3", "echo: question 3", "question 4"]
    );
    let roles: Vec<&str> = fourth.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant", "user"]);
    assert_eq!(completions[4].messages.len(), 2, "chat 8 starts fresh");

    harness.telegram.push_text(7, "/reset");
    harness.telegram.wait_for_sent(6, WAIT).await;
    harness.telegram.push_text(7, "after reset");
    harness.telegram.wait_for_sent(7, WAIT).await;
    assert_eq!(harness.sent_to(7)[4], RESET_TEXT);
    let after_reset = &harness.router.completions()[5].messages;
    assert_eq!(after_reset.len(), 2, "{after_reset:?}");
    harness.bot.assert_logs_hold_no_secret_or_text(&["question 2", "other chat", "after reset"]);
}

#[tokio::test]
async fn start_and_help_answer_without_the_router() {
    let harness = Harness::start(&[]).await;
    harness.telegram.push_text(5, "/start");
    harness.telegram.push_text(5, "/help@cloudfreedom_test_bot");
    harness.telegram.push_text(5, "/unknown");
    harness.telegram.wait_for_sent(3, WAIT).await;
    assert_eq!(harness.sent_to(5), [START_TEXT, HELP_TEXT, HELP_TEXT]);
    // In a group, commands for other bots (or unknown ones) are left alone.
    harness.telegram.push_text(-5, "/weather@OtherBot");
    harness.telegram.push_text(-5, "/weather");
    harness.telegram.push_text(-5, "/help");
    harness.telegram.wait_for_sent(4, WAIT).await;
    assert_eq!(harness.sent_to(-5), [HELP_TEXT]);
    assert!(harness.router.completions().is_empty());
}

#[tokio::test]
async fn chats_outside_the_allow_list_get_nothing_and_are_logged_without_content() {
    let harness = Harness::start(&[("ALLOWED_CHAT_IDS", "11, -100200300")]).await;
    harness.telegram.push_text(99, "let me in");
    harness.telegram.push_text(-100200300, "group question");
    harness.telegram.push_text(11, "private question");
    harness.telegram.wait_for_sent(2, WAIT).await;
    let line = harness.bot.wait_for_log("not in ALLOWED_CHAT_IDS").await;
    assert!(line.contains("\"chat_id\":99"), "{line}");
    // Both allowed chats were answered by now; give a stray answer to 99 time to show up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(harness.sent_to(99).is_empty());
    assert_eq!(harness.sent_to(-100200300), ["echo: group question"]);
    assert_eq!(harness.sent_to(11), ["echo: private question"]);
    assert_eq!(harness.router.completions().len(), 2);
    harness.bot.assert_logs_hold_no_secret_or_text(&[
        "let me in",
        "group question",
        "private question",
    ]);
}

#[tokio::test]
async fn long_answers_are_split_under_telegrams_limit() {
    let harness = Harness::start(&[]).await;
    let paragraph = format!("{}\n\n", "All work and no play makes a long answer. ".repeat(40));
    let answer = paragraph.repeat(6);
    assert!(answer.chars().count() > 2 * 4096);
    harness.router.script([RouterReply::Text(answer.clone())]);
    harness.telegram.push_text(3, "tell me a lot");
    let sent = harness.telegram.wait_for_sent(3, WAIT).await;
    assert_eq!(sent.len(), 3);
    for message in &sent {
        assert!(message.text.encode_utf16().count() <= 4096);
        assert!(message.text.ends_with("answer."), "cut inside a sentence");
    }
    let rejoined: Vec<&str> =
        sent.iter().flat_map(|message| message.text.split_whitespace()).collect();
    assert_eq!(rejoined, answer.split_whitespace().collect::<Vec<_>>());
    harness.bot.assert_logs_hold_no_secret_or_text(&["tell me a lot", "no play"]);
}

#[tokio::test]
async fn a_message_without_text_gets_a_short_note_in_private_chats_only() {
    let harness = Harness::start(&[]).await;
    harness.telegram.push_non_text(-5);
    harness.telegram.push_non_text(5);
    harness.telegram.push_text(-5, "after the photo");
    harness.telegram.wait_for_sent(2, WAIT).await;
    assert_eq!(harness.sent_to(5), [telegram_bot::app::NOT_TEXT_TEXT]);
    assert_eq!(harness.sent_to(-5), ["echo: after the photo"]);
}
