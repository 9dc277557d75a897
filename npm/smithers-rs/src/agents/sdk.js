// Smithers' SDK agents: a ToolLoopAgent of the `ai` package on an Anthropic or OpenAI model.
// `ai` and the provider package are the user's (optional peers), loaded on the first call,
// so importing smithers-rs never needs them.
import { SmithersError } from "../errors.js";

async function peer(name) {
  try {
    return await import(name);
  } catch (e) {
    if (e?.code !== "ERR_MODULE_NOT_FOUND") throw e;
    throw new SmithersError("AGENT_DEPENDENCY_MISSING", `this agent needs the ${name} package: npm install ${name}`, { package: name });
  }
}

class SdkAgent {
  /** @param {{ model: string | object, [k: string]: unknown }} opts ToolLoopAgent settings */
  constructor(opts, provider, factory) {
    if (!opts || opts.model === undefined) throw new SmithersError("INVALID_ARGUMENT", `${new.target.name} needs a model`);
    const { model, ...settings } = opts;
    this.settings = settings;
    this.modelSpec = model;
    this.provider = provider;
    this.factory = factory;
    this.id = opts.id;
    this.tools = opts.tools;
    this.model = typeof model === "string" ? model : model?.modelId;
    this.inner = null;
  }

  async agent() {
    if (!this.inner) {
      const { ToolLoopAgent } = await peer("ai");
      let model = this.modelSpec;
      if (typeof model === "string") model = (await peer(this.provider))[this.factory](model);
      this.inner = new ToolLoopAgent({ ...this.settings, model });
    }
    return this.inner;
  }

  /** As Smithers' SDK agents: a prompt or messages, abort signal, timeout, step callback. */
  async generate(args = {}) {
    const inner = await this.agent();
    const prompt = "messages" in args && args.messages !== undefined ? { messages: args.messages } : { prompt: args.prompt };
    return inner.generate({
      options: args.options,
      abortSignal: args.abortSignal,
      ...prompt,
      timeout: args.timeout,
      onStepFinish: args.onStepFinish,
    });
  }
}

/** A ToolLoopAgent on `@ai-sdk/anthropic` (a model name) or on any model object. */
export class AnthropicAgent extends SdkAgent {
  constructor(opts) {
    super(opts, "@ai-sdk/anthropic", "anthropic");
  }
}

/** A ToolLoopAgent on `@ai-sdk/openai` (a model name) or on any model object. */
export class OpenAIAgent extends SdkAgent {
  constructor(opts) {
    super(opts, "@ai-sdk/openai", "openai");
  }
}
