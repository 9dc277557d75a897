// `import "smithers-rs/register"` (or `node --import smithers-rs/register`) installs the
// workflow loader hooks.
import { registerLoader } from "./install.js";

registerLoader();

export { registerLoader };
