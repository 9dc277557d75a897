// Headless Chromium for the inbox suites: playwright-core driving the system's Chromium
// ($SMITHERS_CHROMIUM or /usr/bin/chromium). On a developer's machine without it the suites
// are skipped; under CI they fail, so a missing install step does not pass for green.
import { existsSync } from "node:fs";

export const CHROMIUM = process.env.SMITHERS_CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let playwright = null;
try {
  playwright = await import("playwright-core");
} catch {
  playwright = null;
}

/** Why the browser cannot run here, or null. */
export const missing = !playwright
  ? "playwright-core is not installed"
  : !existsSync(CHROMIUM)
    ? `no Chromium at ${CHROMIUM}`
    : null;

/** The `skip` option of a browser suite. */
export const skip = missing && !process.env.CI ? missing : false;

/** Launches Chromium, or throws why it cannot. */
export async function launchChromium() {
  if (missing) throw new Error(`${missing} (.ci/run installs Debian's chromium when it runs as root)`);
  return playwright.chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}
