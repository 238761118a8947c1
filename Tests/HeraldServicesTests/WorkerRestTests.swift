import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

@Suite("Worker: a broadcast with nothing due is not asked again on every pass")
struct WorkerRestTests {
    typealias F = WorkerFixtures

    @Test("a broadcast whose jobs all wait for a retry costs about one claim a second while another channel keeps the lanes busy")
    func nothingDueRests() async throws {
        try await ProviderDouble.with { double in
            try await withTestConnection { db, c in
                let waiting = try await F.whatsAppChannel(c, double: double, name: "waiting")
                let busy = try await F.whatsAppChannel(c, double: double, name: "busy")
                let contacts = try await F.contacts(c, count: 2000)
                let later = try await F.sendingBroadcast(c, channel: waiting, contacts: Array(contacts.prefix(50)), template: ("later", ["x"]))
                // Every job of `later` waits an hour (a retry after a provider's outage, say).
                try await c.execute("UPDATE herald.jobs SET run_at = now() + interval '1 hour' WHERE broadcast_id = \(later)")
                let now = try await F.sendingBroadcast(c, channel: busy, contacts: contacts, template: ("now", ["y"]))
                // Every claim on the waiting channel takes tokens from its bucket (and gives them
                // back when nothing was due): count the bucket's updates.
                try await c.simpleQuery("""
                    CREATE TABLE public.bucket_updates (n int NOT NULL);
                    INSERT INTO public.bucket_updates VALUES (0);
                    CREATE FUNCTION public.count_bucket_update() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN UPDATE public.bucket_updates SET n = n + 1; RETURN NEW; END $$;
                    CREATE TRIGGER count_bucket_update AFTER UPDATE ON herald.rate_buckets
                        FOR EACH ROW WHEN (NEW.channel_id = \(waiting)) EXECUTE FUNCTION public.count_bucket_update();
                    """)
                var config = F.configuration(db)
                config.idlePoll = .seconds(1)
                let clock = ContinuousClock()
                let start = clock.now
                let done = F.allDone(db, broadcast: now)
                #expect(try await F.runWorker(config, timeout: .seconds(60)) { try await done() })
                let elapsed = (clock.now - start).inSeconds
                let updates = try await c.query("SELECT n FROM public.bucket_updates")[0].decode(Int.self, at: 0)
                // At most one claim (two updates: take, give back) per second of the run, and a few
                // at the start; asking on every pass made it hundreds.
                #expect(updates <= 2 * (Int(elapsed) + 3), "\(updates) bucket updates in \(elapsed) s")
                #expect(try await F.statuses(c, broadcast: now) == ["sent": 2000])
                #expect(try await F.statuses(c, broadcast: later) == ["queued": 50])
            }
        }
    }
}
