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
    @Test("after the call, blocks the size of libcurl's upload buffer that the heap has no room for are mapped, not heaped")
    func uploadBuffersAreMapped() throws {
        #expect(TransportMemory.mapLargeBuffersSeparately(environment: [:]))
        // glibc maps a block at the threshold only when its heap cannot serve it from free space
        // (a busy process may have some), so ask for more than any test process keeps free: 64 MiB
        // in 1,024 blocks. Without the threshold none of them is mapped (glibc's own starts at
        // 128 KiB and only rises).
        var blocks: [UnsafeMutableRawPointer] = []
        defer { for block in blocks { free(block) } }
        for _ in 0..<1024 { blocks.append(try #require(malloc(TransportMemory.mapThreshold))) }
        // glibc's chunk header, the word before a block: its size, with IS_MMAPPED (0x2) set for
        // a block served by a mapping of its own.
        let mapped = blocks.filter { $0.load(fromByteOffset: -MemoryLayout<Int>.size, as: Int.self) & 0x2 != 0 }.count
        #expect(mapped > 0, "none of 1,024 blocks of \(TransportMemory.mapThreshold) bytes was mapped")
    }
    #endif
}
