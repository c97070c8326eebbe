import Testing
import XDPEmuCore
import XDPEmuRuntime

@Suite struct MapBatchTests {
    func run(_ script: String, capNetAdmin: Bool = true) -> (output: [String], errors: [MapBatch.SyntaxError]) {
        var batch = MapBatch(capNetAdmin: capNetAdmin)
        return batch.run(script: script)
    }

    @Test func answersOneLinePerOperation() {
        let r = run(
            """
            # devices first
            device eth0
            device eth1 ifindex 7 mtu 9000

            create devmap 4
            update 0 eth0
            update 1 eth1 noexist
            update 1 7 exist
            update 4 eth0
            update 2 99
            update 3 eth0 3
            lookup 0
            lookup 1
            lookup 2
            next none
            next 3
            delete 5
            delete 2
            """)
        #expect(r.errors.isEmpty)
        #expect(
            r.output == [
                "ok 1", "ok 7", "ok", "ok", "EEXIST", "ok", "E2BIG", "EINVAL", "EINVAL", "ok eth0",
                "ok eth1", "ENOENT", "ok 0", "ENOENT", "EINVAL", "ok",
            ])
    }

    @Test func createErrorsAndPrivileges() {
        #expect(
            run(
                "create devmap 0\ncreate devmap 2 value_size 8\n"
                    + "create devmap 2 flags 0x20\ncreate devmap 2 flags 8"
            )
            .output == ["EINVAL", "EINVAL", "EINVAL", "ok"])
        #expect(run("create devmap_hash 4").output == ["EINVAL"])  // unknown to the 4.18 profile
        #expect(run("create devmap 4", capNetAdmin: false).output == ["EPERM"])
        #expect(run("update 0 0\nlookup 0\nnext none").output == ["EBADF", "EBADF", "EBADF"])
    }

    @Test func readOnlyMapRefusesWrites() {
        #expect(
            run("device a\ncreate devmap 2 flags 8\nupdate 0 a\ndelete 0\nlookup 0").output
                == ["ok 1", "ok", "EPERM", "EPERM", "ENOENT"])
    }

    @Test func unregisterClearsSlotsAndStaleIfindexIsInvalid() {
        let r = run(
            """
            device a
            device b
            create devmap 3
            update 0 a
            update 1 b
            update 2 a
            unregister a
            lookup 0
            lookup 1
            lookup 2
            update 0 a
            unregister a
            """)
        #expect(
            r.output == [
                "ok 1", "ok 2", "ok", "ok", "ok", "ok", "ok", "ENOENT", "ok b", "ENOENT", "EINVAL",
                "ENODEV",
            ])
    }

    @Test func syntaxErrorsNameTheLineAndTheRestStillRuns() {
        let r = run(
            "device a\nfrobnicate\nupdate x a\nupdate 0 nosuchdev\n"
                + "create devmap 2\nupdate 0 a\nlookup 99999999999")
        #expect(r.output == ["ok 1", "ok", "ok"])
        #expect(r.errors.map(\.line) == [2, 3, 4, 7])
        #expect(r.errors[0].description == "error: line 2: unknown operation 'frobnicate'")
    }
}

@Suite struct ModernMapBatchTests {
    func run(_ script: String, capNetAdmin: Bool = true) -> [String] {
        var batch = MapBatch(semantics: .modern, capNetAdmin: capNetAdmin)
        return batch.run(script: script).output
    }

    @Test("value_size 8 lookups show the program id; devmap_hash takes any key")
    func valueSize8AndHash() {
        #expect(
            run(
                "device a ifindex 5\ncreate devmap 2 value_size 8\nupdate 1 a\nlookup 1\ncreate devmap_hash 2\n"
                    + "update 4000000000 a\nlookup 4000000000\nnext none\ndelete 7")
                == ["ok 5", "ok", "ok", "ok a progid=0", "ok", "ok", "ok a", "ok 4000000000", "ENOENT"])
    }

    @Test("attributes are checked before the capability; no u32 cost limit")
    func attributeChecksFirst() {
        #expect(run("create devmap 0\ncreate devmap 4", capNetAdmin: false) == ["EINVAL", "EPERM"])
        #expect(run("create devmap 16777216\nnext 16777214") == ["ok", "ok 16777215"])
    }
}
