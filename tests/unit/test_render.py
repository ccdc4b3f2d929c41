"""The job's embed at each state: what a member sees, in both languages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.i18n import Message, text
from bot.jobs.failures import JobFailure
from bot.jobs.progress import JobProgress, Phase
from bot.jobs.store import Job, JobKind, JobState
from bot.ui import render
from bot.ui.buttons import result_view

STARTED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
READY = STARTED + timedelta(seconds=30)


def job(kind: JobKind = JobKind.IMAGE, locale: str = "en-US", **request) -> Job:
    options = ({"prompt": "a red fox in the snow", "width": 1280, "height": 1280, "n": 2, "prompt_extend": True}
               if kind is JobKind.IMAGE else
               {"prompt": "the cat blinks", "duration": 5, "quality": "720p", "prompt_extend": True,
                "image_url": "https://cdn/x.png", "image_width": 1280, "image_height": 720})
    return Job(id=42, kind=kind, guild_id=1, channel_id=2, user_id=5005, interaction_id=None, message_id=None,
               request={**options, **request}, state=JobState.RUNNING, task_id="task-unified-1",
               estimated_seconds=30, result_urls=[], error_code=None, error_message=None,
               created_at=int(STARTED.timestamp() * 1000), submitted_at=int(STARTED.timestamp() * 1000) + 2000,
               finished_at=None, locale=locale)


def fields(embed) -> dict[str, str]:
    return {field.name: field.value for field in embed.fields}


def progress(phase: Phase, the_job: Job | None = None, **extra) -> JobProgress:
    return JobProgress(the_job or job(), phase, STARTED, **extra)


def test_queued_shows_the_place_in_line_in_grey():
    embed = render.progress_embed(progress(Phase.QUEUED, position=3), reserved=4000)
    assert embed.title == "a red fox in the snow"
    assert embed.description == "**⏳ Waiting in line** · **#3 in line**"
    assert embed.colour == render.COLOUR_WAITING
    assert fields(embed) == {"Options": "1280x1280 · 2 images", "Credits": "4 credits reserved",
                             "Requested by": "<@5005>", "Started": f"<t:{int(STARTED.timestamp())}:R>"}
    assert embed.footer.text == "job 42"


def test_a_paused_line_says_why_under_the_status():
    embed = render.progress_embed(progress(Phase.QUEUED, position=1, note=Message("runner.slow_api")),
                                  reserved=4000)
    assert embed.description == f"**⏳ Waiting in line** · **#1 in line**\n*{text('en-US', 'runner.slow_api')}*"


def test_generating_shows_the_percentage_a_bar_and_the_eta():
    embed = render.progress_embed(progress(Phase.GENERATING, percent=40, eta=READY), reserved=4000)
    assert embed.description == "**🎨 Generating** · 40%\n`▰▰▰▰▰▰▰▰▱▱▱▱▱▱▱▱▱▱▱▱`"
    assert embed.colour == render.COLOUR_WORKING
    assert fields(embed)["Ready"] == f"<t:{int(READY.timestamp())}:R>"


def test_sending_downloading_and_uploading_each_have_their_line():
    lines = {phase: render.progress_embed(progress(phase, percent=100), reserved=4000).description
             for phase in (Phase.SUBMITTING, Phase.DOWNLOADING, Phase.UPLOADING)}
    assert lines == {Phase.SUBMITTING: "**📨 Sending to Wan 2.5**",
                     Phase.DOWNLOADING: "**📥 Downloading the results**",
                     Phase.UPLOADING: "**📤 Uploading to Discord**"}
    uploading = render.progress_embed(progress(Phase.UPLOADING, percent=100), reserved=4000)
    assert uploading.colour == render.COLOUR_FINISHING and "Ready" not in fields(uploading)


def test_done_shows_what_was_charged_and_how_long_it_took():
    embed = render.result_embed(job(), charged=4000, finished_at=int(READY.timestamp() * 1000))
    assert embed.description == "**✅ Done**" and embed.colour == render.COLOUR_DONE
    assert fields(embed) == {"Options": "1280x1280 · 2 images", "Credits": "4 credits charged",
                             "Requested by": "<@5005>", "Took": "28 s"}


def test_failed_says_why_and_what_was_given_back():
    failure = JobFailure("generation_timeout", "The generation took too long on EvoLink's side. Try again.")
    embed = render.failure_embed(job(), failure, refunded=4000)
    assert embed.description == "**❌ Failed**: The generation took too long on EvoLink's side. Try again."
    assert embed.colour == render.COLOUR_FAILED and fields(embed)["Credits"] == "4 credits given back"


def test_a_video_job_names_its_duration_and_quality():
    embed = render.progress_embed(progress(Phase.GENERATING, job(JobKind.VIDEO), percent=5), reserved=25500)
    assert fields(embed)["Options"] == "5 s · 720p video" and fields(embed)["Credits"] == "25.5 credits reserved"


def test_a_long_prompt_is_shortened_in_the_title_and_user_markdown_is_neutralised():
    embed = render.progress_embed(progress(Phase.QUEUED, job(prompt="**bold** " + "x" * 300)), reserved=1)
    assert embed.title.startswith("\\*\\*bold\\*\\* ") and embed.title.endswith("…")
    assert len(embed.title) <= 110


def test_the_embed_and_buttons_follow_the_requesters_language():
    chinese = job(locale="zh-CN")
    embed = render.progress_embed(progress(Phase.GENERATING, chinese, percent=40, eta=READY), reserved=4000)
    assert embed.description.startswith("**🎨 生成中** · 40%")
    assert fields(embed) == {"参数": "1280x1280 · 2 张图片", "积分": "已预留 4 积分",
                             "发起人": "<@5005>", "开始于": f"<t:{int(STARTED.timestamp())}:R>",
                             "预计完成": f"<t:{int(READY.timestamp())}:R>"}
    assert embed.footer.text == "任务 42"
    labels = [item.item.label for item in result_view(chinese).children]
    assert labels == ["重新生成", "修改重绘", "编辑", "生成视频", "详情", "删除"]


def test_a_video_result_has_no_animate_button():
    ids = [item.item.custom_id for item in result_view(job(JobKind.VIDEO)).children]
    assert ids == ["wan:job:42:reroll", "wan:job:42:remix", "wan:job:42:details", "wan:job:42:delete"]


def test_link_lines_keep_their_links_whole_shorten_the_reasons_and_fit_the_embed():
    url = "https://files.evolink.ai/r/" + "s" * 900
    why = "Discord refused the image (9.9 MB) as too large. " * 3
    links = [render.link_instead_of_file(f"{url}{i}", READY, why) for i in range(4)]
    embed = render.result_embed(job(), charged=8000, links=links)
    assert len(embed.description) <= 4096
    lines = embed.description.split("\n")
    assert lines[0] == "**✅ Done**" and len(lines) == 5
    for i, line in enumerate(lines[1:]):
        assert line.endswith(f"<{url}{i}>") and "…" in line

    # A link longer than the room left is not cut: the line says it is too long instead.
    huge = render.link_instead_of_file("https://files.evolink.ai/r/" + "s" * 5000, READY, "Too large.")
    embed = render.result_embed(job(), charged=2000, links=[huge])
    assert embed.description == "**✅ Done**\nToo large. Its download link is too long to show here."


def test_lists_wrap_over_lines_and_lines_pack_into_pages_within_a_limit():
    from bot.ui.pages import pack_lines, wrap_list

    items = [f"<@&{1_230_000_000_000_001_000 + i}> {i}" for i in range(60)]
    lines = wrap_list(lambda joined: f"**Role allowances**: {joined}", items, ", ", 200)
    assert lines[0].startswith("**Role allowances**: <@&") and all(len(line) <= 200 for line in lines)
    assert ", ".join(lines).removeprefix("**Role allowances**: ") == ", ".join(items)
    assert wrap_list(lambda joined: f"**Blocked**: {joined}", ["nobody"], ", ", 200) == ["**Blocked**: nobody"]
    pages = pack_lines(["a" * 150] * 5, 400)
    assert [page.count("\n") for page in pages] == [1, 1, 0]
