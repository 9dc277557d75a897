/** @jsxImportSource smithers-orchestrator */
// A writer agent drafts a release announcement from the changelog (an MDX prompt); a
// reviewer reads the draft and approves it or pushes it back with a note (the writer then
// drafts again with the note and its previous draft in its prompt); a person says when and
// where it goes out (a <HumanTask>: their answer is JSON for its schema); the publisher
// agent, which may write files, only runs once a person approves publishing (needsApproval).
// Run (needs ANTHROPIC_API_KEY, or ANTHROPIC_BASE_URL pointing at a stand-in):
//   npx smithers up examples/agents/release-announcement.tsx --input '{"version":"3.2.0"}'
// Review:  npx smithers push-back <runId> --node draft --note "mention the migration guide"
//          npx smithers approve <runId> --node draft --by editor
// Schedule: npx smithers approve <runId> schedule --note '{"date":"2026-12-10","channel":"blog"}'
// Publish: npx smithers approve <runId> --node publish --by alice
import { HumanTask, Sequence, Task, createSmithers } from "smithers-orchestrator";
import { read, write } from "smithers-orchestrator/tools";
import { anthropic } from "@ai-sdk/anthropic";
import { ToolLoopAgent } from "ai";
import { z } from "zod";
import DraftPrompt from "./prompts/draft.mdx";

const { Workflow, smithers, outputs } = createSmithers({
  draft: z.object({ title: z.string(), body: z.string() }),
  schedule: z.object({ date: z.string(), channel: z.enum(["blog", "newsletter"]) }),
  published: z.object({ path: z.string(), words: z.number() }),
});

const model = anthropic("claude-sonnet-4-20250514");
const writer = new ToolLoopAgent({ model, tools: { read }, instructions: "You write short, concrete release announcements." });
const publisher = new ToolLoopAgent({
  model,
  tools: { write },
  instructions: "You publish announcements: write the file you are given, then report its path and word count.",
});

export default smithers((ctx) => {
  const version = String((ctx.input as { version?: string }).version ?? "3.2.0");
  const draft = ctx.outputMaybe(outputs.draft, { nodeId: "draft" });
  const schedule = ctx.outputMaybe(outputs.schedule, { nodeId: "schedule" });
  return (
    <Workflow name="release-announcement">
      <Sequence>
        <Task id="draft" output={outputs.draft} agent={writer} approval={{ prompt: "Is this announcement ready to publish?" }} timeoutMs={120_000}>
          <DraftPrompt version={version} changelog="CHANGELOG.md" />
        </Task>
        <HumanTask id="schedule" output={outputs.schedule} maxAttempts={3} prompt={`When and where should "${draft?.title ?? version}" go out? Answer {"date": "YYYY-MM-DD", "channel": "blog" | "newsletter"}.`} />
        <Task id="publish" output={outputs.published} agent={publisher} needsApproval label={`Publish the ${version} announcement`} timeoutMs={120_000}>
          {`Write this announcement to announcements/${version}.md (it goes out on the ${schedule?.channel ?? "blog"} on ${schedule?.date ?? "release day"}), as markdown with the title as a heading:\n\n# ${draft?.title ?? ""}\n\n${draft?.body ?? ""}`}
        </Task>
      </Sequence>
    </Workflow>
  );
});
