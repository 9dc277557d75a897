/** @jsxImportSource smithers-orchestrator */
// Build an article, ask a human to approve publishing it, then publish.
// Run:     npx smithers up examples/publish-approval.tsx --input '{"title":"Hello"}'
// Approve: npx smithers approve <runId> --note "ship it" --by alice
import { Approval, Sequence, Task, approvalDecisionSchema, createSmithers } from "smithers-orchestrator";
import { z } from "zod";

const { Workflow, smithers, outputs } = createSmithers({
  draft: z.object({ title: z.string(), words: z.number() }),
  publishApproval: approvalDecisionSchema,
  published: z.object({ url: z.string(), approvedBy: z.string().nullable() }),
});

export default smithers((ctx) => {
  const draft = ctx.outputMaybe(outputs.draft, { nodeId: "draft" });
  const decision = ctx.outputMaybe(outputs.publishApproval, { nodeId: "publish-approval" });
  const title = String((ctx.input as { title?: string }).title ?? "Untitled");
  return (
    <Workflow name="publish">
      <Sequence>
        <Task id="draft" output={outputs.draft}>
          {async () => ({ title, words: title.split(/\s+/).length * 100 })}
        </Task>
        <Approval
          id="publish-approval"
          output={outputs.publishApproval}
          request={{
            title: `Publish "${draft?.title ?? title}"?`,
            summary: `${draft?.words ?? 0} words, ready for review.`,
          }}
        />
        {decision?.approved ? (
          <Task id="publish" output={outputs.published}>
            {() => ({
              url: `https://blog.example.com/${title.toLowerCase().replace(/\s+/g, "-")}`,
              approvedBy: decision.decidedBy,
            })}
          </Task>
        ) : null}
      </Sequence>
    </Workflow>
  );
});
