import Foundation
import HeraldServices
import HeraldTesting
import Testing

@Suite("Open-file limit: the worker raises it, and its window fits in it")
struct OpenFileLimitTests {
    @Test("the window keeps a reserve of a quarter of the limit, at most 256, and never falls below one send")
    func windowFitsTheLimit() {
        #expect(OpenFileLimit(soft: 65_536, hard: 65_536).window(fitting: 4608) == 4608)
        #expect(OpenFileLimit(soft: 4864, hard: 4864).window(fitting: 4608) == 4608)
        #expect(OpenFileLimit(soft: 4863, hard: 4863).window(fitting: 4608) == 4607)
        #expect(OpenFileLimit(soft: 1024, hard: 1024).window(fitting: 4608) == 768)
        #expect(OpenFileLimit(soft: 300, hard: 300).window(fitting: 4608) == 225)
        #expect(OpenFileLimit(soft: 1, hard: 1).window(fitting: 4608) == 1)
    }

    @Test("in a shrunk window the other channels keep their share, up to an eighth of it; a small per-channel limit stays")
    func perChannelShare() {
        #expect(OpenFileLimit(soft: 65_536, hard: 65_536).perChannelLimit(requested: 4096, window: 4608) == 4096)
        #expect(OpenFileLimit(soft: 1024, hard: 1024).perChannelLimit(requested: 4096, window: 4608) == 672)
        #expect(OpenFileLimit(soft: 1024, hard: 1024).perChannelLimit(requested: 100, window: 4608) == 100)
        #expect(OpenFileLimit(soft: 1024, hard: 1024).perChannelLimit(requested: 4608, window: 4608) == 768)
        #expect(OpenFileLimit(soft: 1, hard: 1).perChannelLimit(requested: 4096, window: 4608) == 1)
    }

    @Test("a window that fits says nothing; one that shrinks says the limit, the window kept and how to raise it")
    func shrinkNotice() throws {
        #expect(OpenFileLimit(soft: 65_536, hard: 65_536).shrinkNotice(requested: 4608) == nil)
        let notice = try #require(OpenFileLimit(soft: 1024, hard: 1024).shrinkNotice(requested: 4608))
        #expect(notice.contains("ulimit -n) is 1024, hard limit 1024"))
        #expect(notice.contains("keeps at most 768 in flight"))
        #expect(notice.contains("LimitNOFILE"))
    }

    @Test("herald worker and herald webhooks started with a soft limit of 256 raise it to the hard limit",
          arguments: [["worker"], ["webhooks", "--port", "0", "--host", "127.0.0.1"]])
    func raisesSoftLimit(command: [String]) async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        let ours = try #require(OpenFileLimit.current())
        try #require(ours.hard > 256, "this test needs a hard limit above 256; it is \(ours.hard)")
        try await withTestConnection { db, _ in
            let process = try HeraldProcess.start("/bin/sh", ["-c", "ulimit -S -n 256 && exec \"$0\" \"$@\"", bin] + command,
                                                  databaseURL: db.url, environment: WorkerFixtures.environment)
            defer { process.signal(SIGKILL) }
            // Until the shell has exec'd herald, the process holds the shell's limits (ours,
            // then 256): only herald's own process counts.
            let raised = try await eventually(within: .seconds(20), every: .milliseconds(20)) {
                Self.program(of: process.pid) == bin && Self.softLimit(of: process.pid) == ours.hard
            }
            #expect(raised, "soft limit of herald \(command[0]): \(Self.softLimit(of: process.pid).map(String.init) ?? "unknown"), hard \(ours.hard); stderr: \(process.stderr)")
            process.signal(SIGKILL)
            _ = await process.wait()
        }
    }

    @Test("under a hard limit of 300, 600 sends to a slow provider go out once each over at most 225 connections, and stderr says why")
    func windowShrinksToTheHardLimit() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await WorkerFixtures.withPromo(to: 600, latency: .milliseconds(300)) { s in
            // With the default window of 4,608, the worker opened a connection per send until
            // it ran out of descriptors: sends failed to connect, and libdispatch trapped.
            let worker = try HeraldProcess.start("/bin/sh", ["-c", "ulimit -n 300 && exec \"$0\" \"$@\"", bin, "worker"],
                                                 databaseURL: s.db.url, environment: WorkerFixtures.environment)
            defer { worker.signal(SIGKILL) }
            let done = WorkerFixtures.allDone(s.db, broadcast: s.broadcast)
            #expect(try await eventually(within: .seconds(60), every: .milliseconds(50)) { try await done() },
                    "not all sent; stderr: \(worker.stderr)")
            worker.signal(SIGTERM)
            #expect(await worker.wait() == 0, "stderr: \(worker.stderr)")
            #expect(try await WorkerFixtures.statuses(s.c, broadcast: s.broadcast) == ["sent": 600])
            let sent = s.double.received(.whatsApp).compactMap { $0.json?["biz_opaque_callback_data"]?.string }
            #expect(sent.count == 600 && Set(sent).count == 600, "each message sent once: \(sent.count) requests")
            #expect(s.double.httpConnectionCount <= 225, "connections: \(s.double.httpConnectionCount)")
            #expect(worker.stderr.contains("keeps at most 225 in flight"), "stderr: \(worker.stderr)")
        }
    }

    /// The program process `pid` runs now (its `argv[0]`, from `/proc/<pid>/cmdline`).
    static func program(of pid: pid_t) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).first.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The soft "Max open files" of process `pid`, from `/proc/<pid>/limits`.
    static func softLimit(of pid: pid_t) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else { return nil }
        return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.flatMap { Int($0) }
    }
}
