// serve/mail.js: sendMail against a real SMTP server on 127.0.0.1 (smtp-server, and small
// scripted servers for odd peers), the message format, and the run-is-waiting mail.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SMTPServer } from "smtp-server";
import { SmithersError } from "../src/errors.js";
import { buildMessage, quotedPrintable, sendMail, waitMail } from "../src/serve/mail.js";

// ------------------------------------------------------------------ a real server

/**
 * An smtp-server on 127.0.0.1:<ephemeral>. Every accepted message lands in `received`
 * as { raw, envelope, user, secure, clientName }; `connections` counts TCP connections.
 */
async function startServer(options = {}) {
  const received = [];
  const state = { connections: 0 };
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    closeTimeout: 200,
    onConnect(_session, cb) {
      state.connections++;
      cb();
    },
    onData(stream, session, cb) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        received.push({
          raw: Buffer.concat(chunks).toString("latin1"),
          envelope: { from: session.envelope.mailFrom.address, to: session.envelope.rcptTo.map((r) => r.address) },
          user: session.user,
          secure: session.secure,
          clientName: session.hostNameAppearsAs,
        });
        cb(null, "Ok: queued as TEST1");
      });
    },
    ...options,
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  server.on("error", () => {});
  return {
    port: server.server.address().port,
    received,
    state,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A TCP server that runs `onSocket(socket)` for each connection; close() destroys them all. */
async function scriptedServer(onSocket) {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    onSocket(socket);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    sockets,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(resolve);
      }),
  };
}

/** Lines of a socket, one callback per line (without CRLF). */
function onLines(socket, fn) {
  let buffer = "";
  socket.on("data", (chunk) => {
    buffer += chunk.toString("latin1");
    let nl;
    while ((nl = buffer.indexOf("\r\n")) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      fn(line);
    }
  });
}

const plain = (port, extra = {}) => ({ host: "127.0.0.1", port, timeoutMs: 5000, ...extra });

async function rejectsWith(promise, code, pattern) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof SmithersError, `expected a SmithersError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

// ------------------------------------------------------------------ reading a message

/** { headers: Map<lowercase name, unfolded value>, body } of a raw CRLF message. */
function parseMessage(raw) {
  const split = raw.indexOf("\r\n\r\n");
  assert.ok(split > 0, "a blank line ends the header");
  const head = raw.slice(0, split).replace(/\r\n(?=[ \t])/g, "");
  const headers = new Map();
  for (const line of head.split("\r\n")) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body: raw.slice(split + 4) };
}

/** RFC 2047 B-words (UTF-8), adjacent words joined. */
function decodeWords(value) {
  return value
    .replace(/(\?=)[ \t]+(?==\?)/g, "$1")
    .replace(/=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=/gi, (_, b64) => Buffer.from(b64, "base64").toString("utf8"));
}

/** Quoted-printable → UTF-8 text with \n line ends. */
function decodeQP(body) {
  const joined = body.replace(/=\r\n/g, "");
  const bytes = [];
  for (let i = 0; i < joined.length; i++) {
    if (joined[i] === "=" && /^[0-9A-F]{2}$/.test(joined.slice(i + 1, i + 3))) {
      bytes.push(parseInt(joined.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(joined.charCodeAt(i));
    }
  }
  return Buffer.from(bytes).toString("utf8").replace(/\r\n/g, "\n");
}

/** The parts of a multipart body: [{ headers, body }]. */
function parts(message) {
  const boundary = /boundary="([^"]+)"/.exec(message.headers.get("content-type"))[1];
  const sections = message.body.split(`--${boundary}`);
  assert.ok(sections.at(-1).startsWith("--"), "the closing boundary is there");
  // the CRLF before a boundary belongs to the boundary
  return sections.slice(1, -1).map((s) => parseMessage(s.replace(/^\r\n/, "").replace(/\r\n$/, "")));
}

/** Every line ends in CRLF and none is longer than 998 characters. */
function assertWellFormed(raw) {
  assert.ok(raw.endsWith("\r\n"));
  assert.doesNotMatch(raw, /[^\r]\n/, "no bare LF");
  assert.doesNotMatch(raw, /\r(?!\n)/, "no bare CR");
  for (const line of raw.split("\r\n")) assert.ok(line.length <= 998, `line of ${line.length} characters`);
  assert.match(raw, /^[\x00-\x7f]*$/, "7-bit");
}

// ------------------------------------------------------------------ delivery

test("delivers to two recipients: envelope, headers, UTF-8 subject, quoted-printable body", async () => {
  const server = await startServer();
  try {
    const text = "Grüße aus Köln — the deploy is waiting.\nSecond line with trailing space \nx=1\n" + "long ".repeat(60);
    const result = await sendMail(plain(server.port, { clientName: "ci.example.org" }), {
      from: "Smithers Bot <bot@example.com>",
      to: ["ann@example.org", '"Doe, John" <john@example.net>'],
      subject: "Freigabe nötig: deploy 🚀 (waiting)",
      text,
      headers: { "X-Smithers-Run": "r-123" },
    });
    assert.deepEqual(result.accepted, ["ann@example.org", "john@example.net"]);
    assert.match(result.response, /^250 .*queued as TEST1/);
    assert.match(result.messageId, /^<[^@<>]+@example\.com>$/);

    assert.equal(server.received.length, 1);
    const got = server.received[0];
    assert.deepEqual(got.envelope, { from: "bot@example.com", to: ["ann@example.org", "john@example.net"] });
    assert.equal(got.clientName, "ci.example.org");
    assert.equal(got.secure, false);
    assertWellFormed(got.raw);

    const m = parseMessage(got.raw);
    assert.equal(m.headers.get("from"), "Smithers Bot <bot@example.com>");
    assert.equal(m.headers.get("to"), 'ann@example.org, "Doe, John" <john@example.net>');
    assert.match(m.headers.get("subject"), /^=\?UTF-8\?B\?/);
    assert.equal(decodeWords(m.headers.get("subject")), "Freigabe nötig: deploy 🚀 (waiting)");
    assert.equal(m.headers.get("message-id"), result.messageId);
    assert.equal(m.headers.get("mime-version"), "1.0");
    assert.equal(m.headers.get("x-smithers-run"), "r-123");
    assert.match(m.headers.get("date"), /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/);
    assert.ok(Math.abs(Date.parse(m.headers.get("date")) - Date.now()) < 60_000, "Date is now");
    assert.equal(m.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(m.headers.get("content-transfer-encoding"), "quoted-printable");
    assert.equal(decodeQP(m.body), `${text}\n`);
  } finally {
    await server.close();
  }
});

test("html makes a multipart/alternative message; a plain ASCII subject stays readable", async () => {
  const server = await startServer();
  try {
    await sendMail(plain(server.port), {
      from: "bot@example.com",
      to: "ann@example.org, bob@example.org",
      subject: "Plain subject",
      text: "text part ü",
      html: "<p>html part <b>ü</b></p>",
    });
    const got = server.received[0];
    assert.deepEqual(got.envelope.to, ["ann@example.org", "bob@example.org"]);
    assertWellFormed(got.raw);
    const m = parseMessage(got.raw);
    assert.equal(m.headers.get("subject"), "Plain subject");
    assert.match(m.headers.get("content-type"), /^multipart\/alternative; boundary="/);
    const [t, h] = parts(m);
    assert.equal(t.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(decodeQP(t.body), "text part ü");
    assert.equal(h.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(decodeQP(h.body), "<p>html part <b>ü</b></p>");
  } finally {
    await server.close();
  }
});

test("dot-stuffing: body lines that start with '.' (and a lone '.') arrive intact", async () => {
  const server = await startServer();
  try {
    const text = ".leading dot\n.\n..two dots\nafter the lone dot\n.";
    await sendMail(plain(server.port), { from: "bot@example.com", to: "ann@example.org", subject: "dots", text });
    assert.equal(server.received.length, 1);
    assert.equal(decodeQP(parseMessage(server.received[0].raw).body), `${text}\n`);
  } finally {
    await server.close();
  }
});

// ------------------------------------------------------------------ authentication

function authServer(methods) {
  return startServer({
    authOptional: false,
    allowInsecureAuth: true,
    authMethods: methods,
    onAuth(auth, _session, cb) {
      if (auth.username === "smithers" && auth.password === "s3cret ü") return cb(null, { user: `${auth.method}:${auth.username}` });
      return cb(new Error("Invalid username or password"));
    },
  });
}

test("AUTH PLAIN: the right password is accepted, a wrong one is MAIL_AUTH_FAILED", async () => {
  const server = await authServer(["PLAIN", "LOGIN"]);
  try {
    const msg = { from: "bot@example.com", to: "ann@example.org", subject: "auth", text: "hi" };
    await sendMail(plain(server.port, { user: "smithers", pass: "s3cret ü" }), msg);
    assert.equal(server.received.length, 1);
    assert.equal(server.received[0].user, "PLAIN:smithers");

    await rejectsWith(sendMail(plain(server.port, { user: "smithers", pass: "wrong" }), msg), "MAIL_AUTH_FAILED", /refused the credentials.*535/);
    await rejectsWith(sendMail(plain(server.port), msg), "MAIL_REJECTED", /530/);
    assert.equal(server.received.length, 1, "nothing else was delivered");
  } finally {
    await server.close();
  }
});

test("AUTH LOGIN when the server offers only LOGIN; no AUTH at all is MAIL_AUTH_FAILED", async () => {
  const login = await authServer(["LOGIN"]);
  try {
    const msg = { from: "bot@example.com", to: "ann@example.org", subject: "auth", text: "hi" };
    await sendMail(plain(login.port, { user: "smithers", pass: "s3cret ü" }), msg);
    assert.equal(login.received[0].user, "LOGIN:smithers");
    await rejectsWith(sendMail(plain(login.port, { user: "smithers", pass: "nope" }), msg), "MAIL_AUTH_FAILED");
  } finally {
    await login.close();
  }
  const noAuth = await startServer({ disabledCommands: ["STARTTLS", "AUTH"] });
  try {
    await rejectsWith(
      sendMail(plain(noAuth.port, { user: "smithers", pass: "x" }), { from: "bot@example.com", to: "ann@example.org", subject: "s", text: "t" }),
      "MAIL_AUTH_FAILED",
      /does not offer AUTH/,
    );
    assert.equal(noAuth.received.length, 0);
  } finally {
    await noAuth.close();
  }
});

test("XOAUTH2: an access token is sent as the bearer, a refused one is MAIL_AUTH_FAILED", async () => {
  const server = await startServer({
    authOptional: false,
    allowInsecureAuth: true,
    authMethods: ["XOAUTH2"],
    onAuth(auth, _session, cb) {
      if (auth.method === "XOAUTH2" && auth.username === "bot@example.com" && auth.accessToken === "ya29.good-token") return cb(null, { user: `XOAUTH2:${auth.username}` });
      return cb(null, { data: { status: "401", schemes: "bearer" } });
    },
  });
  try {
    const msg = { from: "bot@example.com", to: "ann@example.org", subject: "oauth", text: "hi" };
    await sendMail(plain(server.port, { auth: { type: "OAuth2", user: "bot@example.com", accessToken: "ya29.good-token" } }), msg);
    assert.equal(server.received.length, 1);
    assert.equal(server.received[0].user, "XOAUTH2:bot@example.com");
    await rejectsWith(sendMail(plain(server.port, { auth: { type: "OAuth2", user: "bot@example.com", accessToken: "ya29.expired" } }), msg), "MAIL_AUTH_FAILED");
    await rejectsWith(sendMail(plain(server.port, { auth: { type: "Basic", user: "x" } }), msg), "INVALID_ARGUMENT");
    assert.equal(server.received.length, 1);
  } finally {
    await server.close();
  }
});

// ------------------------------------------------------------------ failures

test("a rejected recipient is MAIL_REJECTED naming it; the others got the message (nodemailer sends to those accepted)", async () => {
  const server = await startServer({
    onRcptTo(address, _session, cb) {
      if (address.address.startsWith("nobody")) {
        const e = new Error("5.1.1 mailbox unavailable");
        e.responseCode = 550;
        return cb(e);
      }
      cb();
    },
  });
  try {
    await assert.rejects(
      sendMail(plain(server.port), { from: "bot@example.com", to: ["ann@example.org", "nobody@example.org"], subject: "s", text: "t" }),
      (e) => {
        assert.equal(e.code, "MAIL_REJECTED");
        assert.match(e.message, /<nobody@example\.org>/);
        assert.match(e.message, /550/);
        assert.match(e.message, /delivered to ann@example\.org/);
        assert.deepEqual(e.details.accepted, ["ann@example.org"]);
        assert.equal(e.details.responseCode, 550);
        assert.deepEqual(e.details.rejected.map((r) => r.recipient), ["nobody@example.org"]);
        return true;
      },
    );
    assert.equal(server.received.length, 1);
    assert.deepEqual(server.received[0].envelope.to, ["ann@example.org"]);
  } finally {
    await server.close();
  }
});

test("nobody listening is MAIL_CONNECT_FAILED", async () => {
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  await rejectsWith(
    sendMail(plain(port), { from: "bot@example.com", to: "ann@example.org", subject: "s", text: "t" }),
    "MAIL_CONNECT_FAILED",
    new RegExp(`cannot connect to 127\\.0\\.0\\.1:${port}.*ECONNREFUSED`),
  );
});

test("a server that never answers is MAIL_TIMEOUT, and the socket is closed", async () => {
  const closed = [];
  const server = await scriptedServer((socket) => {
    socket.on("close", () => closed.push(true));
  });
  try {
    const started = Date.now();
    await rejectsWith(
      sendMail(plain(server.port, { timeoutMs: 300 }), { from: "bot@example.com", to: "ann@example.org", subject: "s", text: "t" }),
      "MAIL_TIMEOUT",
      /timed out after 300 ms \(waiting for the greeting\)/,
    );
    assert.ok(Date.now() - started < 3000);
    for (let i = 0; i < 50 && closed.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed.length, 1, "the client hung up");
  } finally {
    await server.close();
  }
});

test("a server that stops answering mid-exchange is MAIL_TIMEOUT naming the step", async () => {
  const server = await scriptedServer((socket) => {
    socket.write("220 silent.test ESMTP\r\n");
    onLines(socket, (line) => {
      if (/^EHLO /.test(line)) socket.write("250 silent.test\r\n");
      // MAIL FROM is never answered
    });
  });
  try {
    await rejectsWith(
      sendMail(plain(server.port, { timeoutMs: 300 }), { from: "bot@example.com", to: "ann@example.org", subject: "s", text: "t" }),
      "MAIL_TIMEOUT",
      /MAIL FROM:<bot@example\.com>/,
    );
  } finally {
    await server.close();
  }
});

test("header injection and bad addresses are MAIL_INVALID_MESSAGE before connecting", async () => {
  const server = await startServer();
  try {
    const base = { from: "bot@example.com", to: "ann@example.org", subject: "s", text: "t" };
    const bad = [
      { ...base, subject: "hello\r\nBcc: victim@example.org" },
      { ...base, subject: "hello\nX-Evil: 1" },
      { ...base, to: "ann@example.org\r\nBcc: victim@example.org" },
      { ...base, to: ["ann@example.org", "x@y.org>\r\nRCPT TO:<victim@example.org"] },
      { ...base, from: "Bot <bot@example.com>\nBcc: victim@example.org" },
      { ...base, headers: { "X-Run": "r1\r\nBcc: victim@example.org" } },
      { ...base, headers: { "X-Bad:Name": "v" } },
      { ...base, headers: { Bcc: "victim@example.org" } },
      { ...base, to: "not an address" },
      { ...base, to: [] },
      { ...base, from: "a@example.com, b@example.com" },
      { ...base, text: undefined },
    ];
    for (const message of bad) {
      await rejectsWith(sendMail(plain(server.port), message), "MAIL_INVALID_MESSAGE");
    }
    assert.equal(server.state.connections, 0, "never connected");
    assert.equal(server.received.length, 0);
    await rejectsWith(sendMail({ port: server.port }, base), "INVALID_ARGUMENT");
    await rejectsWith(sendMail(plain(server.port, { starttls: "sometimes" }), base), "INVALID_ARGUMENT");
  } finally {
    await server.close();
  }
});

test("EHLO refused falls back to HELO; multi-line replies are read whole", async () => {
  const seen = [];
  const server = await scriptedServer((socket) => {
    socket.write("220-old.test says hello\r\n220-this greeting has\r\n220 three lines\r\n");
    onLines(socket, (line) => {
      if (seen.at(-1) === "DATA" && line !== ".") return;
      seen.push(line.startsWith("DATA") || line.startsWith("HELO") || line.startsWith("EHLO") ? line.split(" ")[0] : line);
      if (line.startsWith("EHLO")) socket.write("502 5.5.2 EHLO not implemented\r\n");
      else if (line.startsWith("HELO")) socket.write("250 old.test\r\n");
      else if (line.startsWith("MAIL FROM")) socket.write("250-2.1.0 sender\r\n250 2.1.0 ok\r\n");
      else if (line.startsWith("RCPT TO")) socket.write("250 2.1.5 ok\r\n");
      else if (line === "DATA") socket.write("354 go ahead\r\n");
      else if (line === ".") socket.write("250-2.0.0 accepted\r\n250 2.0.0 queued as OLD1\r\n");
      else if (line === "QUIT") socket.end("221 bye\r\n");
    });
  });
  try {
    const result = await sendMail(plain(server.port), { from: "bot@example.com", to: "ann@example.org", subject: "s", text: "t" });
    assert.equal(result.response, "250 2.0.0 accepted 2.0.0 queued as OLD1");
    // nodemailer closes the connection once the message is accepted, without QUIT
    assert.deepEqual(seen, ["EHLO", "HELO", "MAIL FROM:<bot@example.com>", "RCPT TO:<ann@example.org>", "DATA", "."]);
  } finally {
    await server.close();
  }
});

// ------------------------------------------------------------------ TLS

/** A self-signed key + certificate for localhost, or null when openssl is missing. */
function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), "smithers-mail-"));
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=localhost"],
      { stdio: "ignore" },
    );
    return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } catch (e) {
    if (e.code === "ENOENT") return null;
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("STARTTLS with a self-signed certificate; implicit TLS; starttls: always", async (t) => {
  const pair = selfSigned();
  if (!pair) {
    t.skip("openssl is not installed: no certificate to test TLS with");
    return;
  }
  const msg = { from: "bot@example.com", to: "ann@example.org", subject: "tls", text: "secret" };

  const starttls = await startServer({
    ...pair,
    disabledCommands: [],
    authOptional: false,
    authMethods: ["PLAIN"],
    onAuth(auth, session, cb) {
      // smtp-server offers AUTH only after STARTTLS here (no allowInsecureAuth)
      cb(auth.password === "pw" && session.secure ? null : new Error("no"), { user: auth.username });
    },
  });
  try {
    await sendMail(plain(starttls.port, { user: "smithers", pass: "pw", rejectUnauthorized: false }), msg);
    assert.equal(starttls.received.length, 1);
    assert.equal(starttls.received[0].secure, true);
    assert.equal(starttls.received[0].user, "smithers");
    assert.equal(decodeQP(parseMessage(starttls.received[0].raw).body), "secret\n");

    // the certificate is checked by default
    await rejectsWith(sendMail(plain(starttls.port, { user: "smithers", pass: "pw" }), msg), "MAIL_TLS_UNAVAILABLE", /TLS handshake .* failed/);
    // starttls "never": this server refuses AUTH in the clear (538), and says so
    await rejectsWith(sendMail(plain(starttls.port, { user: "smithers", pass: "pw", starttls: "never" }), msg), "MAIL_AUTH_FAILED", /538 .*STARTTLS/);
    assert.equal(starttls.received.length, 1);
  } finally {
    await starttls.close();
  }

  const implicit = await startServer({ ...pair, secure: true });
  try {
    await sendMail(plain(implicit.port, { secure: true, rejectUnauthorized: false }), msg);
    assert.equal(implicit.received.length, 1);
    assert.equal(implicit.received[0].secure, true);
    await rejectsWith(sendMail(plain(implicit.port, { secure: true }), msg), "MAIL_TLS_UNAVAILABLE");
  } finally {
    await implicit.close();
  }

  const clear = await startServer();
  try {
    await rejectsWith(sendMail(plain(clear.port, { starttls: "always" }), msg), "MAIL_TLS_UNAVAILABLE", /does not offer STARTTLS/);
    assert.equal(clear.received.length, 0);
  } finally {
    await clear.close();
  }
});

// ------------------------------------------------------------------ the message format

test("buildMessage: long subjects fold, encoded-words stay whole, Message-ID and Date may be given", () => {
  const subject = `${"ä".repeat(100)} and ${"word ".repeat(40)}`;
  const built = buildMessage(
    { from: "Ünïcode Sender <bot@example.com>", to: "ann@example.org", subject, text: "t", headers: { "Message-ID": "<fixed@example.com>", Date: "Mon, 04 May 2026 10:00:00 +0000" } },
    new Date(),
  );
  assertWellFormed(built.data);
  const m = parseMessage(built.data);
  assert.equal(decodeWords(m.headers.get("subject")), subject);
  assert.equal(decodeWords(m.headers.get("from")), "Ünïcode Sender <bot@example.com>");
  assert.equal(built.messageId, "<fixed@example.com>");
  assert.equal(m.headers.get("message-id"), "<fixed@example.com>");
  assert.equal(m.headers.get("date"), "Mon, 04 May 2026 10:00:00 +0000");
  for (const line of built.data.split("\r\n").slice(0, 12)) assert.ok(line.length <= 78, line);
  // a subject that looks like an encoded-word is encoded itself
  const tricky = parseMessage(buildMessage({ from: "bot@example.com", to: "a@example.org", subject: "=?UTF-8?B?aGk=?=", text: "" }).data);
  assert.equal(decodeWords(tricky.headers.get("subject")), "=?UTF-8?B?aGk=?=");
});

test("quotedPrintable: escapes, trailing whitespace, soft breaks ≤ 76", () => {
  assert.equal(quotedPrintable("a=b"), "a=3Db");
  assert.equal(quotedPrintable("end \nnext\t"), "end=20\r\nnext=09");
  assert.equal(quotedPrintable("Grüße"), "Gr=C3=BC=C3=9Fe");
  const long = quotedPrintable("é".repeat(100));
  for (const line of long.split("\r\n")) assert.ok(line.length <= 76);
  assert.equal(decodeQP(long), "é".repeat(100));
});

// ------------------------------------------------------------------ the waiting mail

const gate = (over = {}) => ({
  nodeId: "deploy",
  iteration: 0,
  title: "Deploy to production",
  summary: "Ship build 42",
  prompt: null,
  kind: "gate",
  round: 1,
  input: [],
  required: [],
  requestedAt: "2026-05-04T10:00:00.000Z",
  ...over,
});
const run = { runId: "r-123", workflowName: "deploy", status: "waiting-approval", startedBy: "alice" };

test("waitMail: subject forms", () => {
  const one = waitMail({ run, gates: [gate()], inboxUrl: "https://smithers.example/", from: "bot@example.com", to: "ops@example.com" });
  assert.equal(one.subject, "[smithers] deploy (waiting)");
  assert.equal(one.from, "bot@example.com");
  assert.equal(one.to, "ops@example.com");
  const two = waitMail({ run, gates: [gate(), gate({ nodeId: "migrate" })], from: "b@example.com", to: "o@example.com" });
  assert.equal(two.subject, "[smithers] deploy (waiting: 2 approvals)");
  const prefixed = waitMail({ run, gates: [gate()], subjectPrefix: "[ci]", from: "b@example.com", to: "o@example.com" });
  assert.equal(prefixed.subject, "[ci] deploy (waiting)");
  const bare = waitMail({ run, gates: [gate()], subjectPrefix: "", from: "b@example.com", to: "o@example.com" });
  assert.equal(bare.subject, "deploy (waiting)");
  const newline = waitMail({ run: { ...run, workflowName: "de\nploy" }, gates: [gate()], from: "b@example.com", to: "o@example.com" });
  assert.equal(newline.subject, "[smithers] de ploy (waiting)");
  const none = waitMail({ run, gates: null, from: "b@example.com", to: "o@example.com" });
  assert.equal(none.subject, "[smithers] deploy (waiting)");
  assert.throws(() => waitMail({ run: {}, gates: [], from: "b@example.com", to: "o@example.com" }), { code: "INVALID_ARGUMENT" });
});

test("waitMail: text has the run, each gate, required marks, links and CLI commands", () => {
  const gates = [
    gate({ iteration: 2, input: ["APPROVED_BY", "WINDOW"], required: ["APPROVED_BY"] }),
    gate({ nodeId: "metrics", kind: "review", round: 3, title: "Check metrics", summary: null, prompt: "Look at the error rate\nand the p99." }),
  ];
  for (const inboxUrl of ["https://smithers.example/inbox", "https://smithers.example/inbox/"]) {
    const mail = waitMail({ run: { ...run, runId: "r 1/x" }, gates, inboxUrl, from: "b@example.com", to: "o@example.com" });
    const t = mail.text;
    assert.match(t, /r 1\/x/);
    assert.match(t, /workflow: +deploy/);
    assert.match(t, /started by: +alice/);
    assert.ok(t.includes(`inbox: `) && t.includes(inboxUrl));
    assert.ok(t.includes("https://smithers.example/inbox/runs/r%201%2Fx"), t);
    assert.ok(!t.includes("inboxruns/"));
    assert.match(t, /1\. Deploy to production\n +node deploy, iteration 2, waiting since 2026-05-04T10:00:00\.000Z\n +Ship build 42/);
    assert.match(t, /inputs: APPROVED_BY\*, WINDOW \(\* required\)/);
    assert.ok(t.includes("npx smithers approve 'r 1/x' --node deploy --iteration 2"));
    assert.ok(t.includes("npx smithers deny 'r 1/x' --node deploy --iteration 2"));
    assert.match(t, /2\. Check metrics\n +node metrics, review round 3,/);
    assert.match(t, / +Look at the error rate\n +and the p99\./);
    assert.ok(t.includes("npx smithers push-back 'r 1/x' --node metrics"));
    assert.ok(t.includes("npx smithers reject 'r 1/x' --node metrics"));
  }
  const simple = waitMail({ run, gates: [gate()], from: "b@example.com", to: "o@example.com" });
  assert.ok(simple.text.includes("npx smithers approve r-123 --node deploy\n"));
  assert.doesNotMatch(simple.text, /iteration|review|inputs:/);
  assert.doesNotMatch(simple.text, /https?:/, "no links without inboxUrl");
});

test("waitMail: HTML escapes user text and links only http(s) URLs", () => {
  const mail = waitMail({
    run: { ...run, workflowName: "a&b", startedBy: '<img src=x onerror="x">' },
    gates: [gate({ title: "<script>alert(1)</script>", summary: 'say "hi" & <b>bye</b>', input: ["<K>"], required: ["<K>"] })],
    inboxUrl: 'https://smithers.example/?a=1&b="2"',
    from: "b@example.com",
    to: "o@example.com",
  });
  const h = mail.html;
  assert.doesNotMatch(h, /<script>|<img|<b>bye|<K>/);
  assert.ok(h.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(h.includes("say &quot;hi&quot; &amp; &lt;b&gt;bye&lt;/b&gt;"));
  assert.ok(h.includes("<strong>a&amp;b</strong>"));
  assert.ok(h.includes('<a href="https://smithers.example/?a=1&amp;b=&quot;2&quot;">Open the inbox</a>'));
  assert.ok(h.includes("<code>&lt;K&gt;</code><strong>*</strong>"));
  assert.ok(h.includes("npx smithers approve r-123 --node deploy"));
  assert.ok(mail.text.includes("<script>alert(1)</script>"), "the text part is plain text");
  const js = waitMail({ run, gates: [gate()], inboxUrl: "javascript:alert(1)//", from: "b@example.com", to: "o@example.com" });
  assert.doesNotMatch(js.html, /href="javascript/);
});

test("waitMail output goes through sendMail", async () => {
  const server = await startServer();
  try {
    const mail = waitMail({
      run,
      gates: [gate({ title: "Déploiement <prod>" }), gate({ nodeId: "b" })],
      inboxUrl: "http://127.0.0.1:7331/",
      from: "Smithers <bot@example.com>",
      to: ["ops@example.com"],
    });
    await sendMail(plain(server.port), mail);
    const m = parseMessage(server.received[0].raw);
    assert.equal(m.headers.get("subject"), "[smithers] deploy (waiting: 2 approvals)");
    const [t, h] = parts(m);
    assert.equal(decodeQP(t.body), mail.text);
    assert.equal(decodeQP(h.body), mail.html);
    assert.ok(decodeQP(h.body).includes("Déploiement &lt;prod&gt;"));
  } finally {
    await server.close();
  }
});
