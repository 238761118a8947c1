import Foundation
import HeraldTransport
import Testing

@Suite("TransportMemory: large blocks in mappings of their own")
struct TransportMemoryTests {
    @Test("ops' own choice is left alone", arguments: [
        ["MALLOC_MMAP_THRESHOLD_": "1048576"],
        ["GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576"],
    ])
    func opsChoiceWins(environment: [String: String]) {
        #expect(!TransportMemory.mapLargeBuffersSeparately(environment: environment))
    }

    #if canImport(Glibc)
    @Test("after the call, a block the size of libcurl's upload buffer is a mapping of its own")
    func uploadBufferIsMapped() throws {
        #expect(TransportMemory.mapLargeBuffersSeparately(environment: [:]))
        let block = try #require(malloc(TransportMemory.mapThreshold))
        defer { free(block) }
        // glibc's chunk header, the word before the block: its size with IS_MMAPPED (0x2) set
        // for a block served by a mapping of its own.
        let header = block.load(fromByteOffset: -MemoryLayout<Int>.size, as: Int.self)
        #expect(header & 0x2 != 0, "a \(TransportMemory.mapThreshold)-byte block came from the heap")
    }
    #endif
}
