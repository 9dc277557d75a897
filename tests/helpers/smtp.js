// A real SMTP server on loopback (smtp-server), for the tests of the mail smithers sends.
import { SMTPServer } from "smtp-server";

/** Listens on a free port; `received` collects `{ raw, from, to }` per message. */
export function smtpServer() {
  const received = [];
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, session, cb) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        received.push({
          raw: Buffer.concat(chunks).toString("utf8"),
          from: session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
        });
        cb();
      });
    },
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ port: server.server.address().port, received, close: () => new Promise((r) => server.close(r)) }));
  });
}

/** The decoded text of a quoted-printable body (enough for assertions). */
export const decodeQP = (s) =>
  Buffer.from(s.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");

