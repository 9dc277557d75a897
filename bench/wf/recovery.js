// Workflow file for the recovery figures: a <Sequence> of input.n compute tasks, each appending
// its id to the file input.side (bench/workflows.js sideEffectSequence).
import { sideEffectSequence } from "../workflows.js";

export default sideEffectSequence();
