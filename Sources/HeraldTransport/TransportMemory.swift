import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide memory settings that a process holding thousands of transfers in flight wants.
/// The process decides (`herald worker` calls ``mapLargeBuffersSeparately()`` at start); a
/// library never changes the allocator behind its host's back.
public enum TransportMemory {
    /// The allocation size from which glibc gives each block a mapping of its own.
    public static let mapThreshold = 64 * 1024

    /// Makes glibc's malloc serve blocks of ``mapThreshold`` bytes or more with a mapping of their
    /// own instead of growing its heaps (`mallopt(M_MMAP_THRESHOLD)`). glibc still serves such a
    /// block from a heap's free space when it has room; the threshold decides what happens when it
    /// has none, which with thousands of handles made is most of them.
    ///
    /// Why: libcurl 7.88 gives every easy handle that sends a body over HTTP/2 a 64 KiB upload
    /// buffer, once per handle (heaptrack at 1,000 channels over HTTPS: 258 MB of peak heap in
    /// 4,117 such blocks, one per transfer of the 4,096 window). A request body fills a page or
    /// two of it. On the heap those blocks sit between short-lived ones, whose reuse makes the
    /// pages around them resident, and the worker's RSS crept to about 200 MB; in mappings of
    /// their own, only the touched pages count, and a freed one goes back to the system at once
    /// (140–145 MB in the same shape; BENCHMARKS.md). Handles are reused, so these mappings are made
    /// about once per handle, not once per request. glibc's own default starts at 128 KiB and
    /// rises with what is freed, which never puts these blocks in mappings.
    ///
    /// Leaves the allocator alone when ops chose otherwise (`MALLOC_MMAP_THRESHOLD_` or a
    /// `glibc.malloc.mmap_threshold` tunable in `GLIBC_TUNABLES`), off glibc, and when another
    /// allocator serves `malloc` (``allocator``; `herald` links mimalloc, with which the worker
    /// peaked at 142–143 MB in that shape: BENCHMARKS.md, "mimalloc").
    /// - Returns: whether the threshold was set.
    @discardableResult
    public static func mapLargeBuffersSeparately(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        #if canImport(Glibc)
        guard allocator == .glibc else { return false }
        if environment["MALLOC_MMAP_THRESHOLD_"] != nil { return false }
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("glibc.malloc.mmap_threshold") { return false }
        guard let mallopt else { return false }
        return mallopt(mmapThresholdParameter, Int32(mapThreshold)) == 1
        #else
        return false
        #endif
    }

    /// Which allocator serves this process's `malloc`, as the dynamic linker bound it.
    public enum Allocator: String, Sendable {
        /// glibc's own.
        case glibc
        /// mimalloc (`herald` links it).
        case mimalloc
        /// Another one (preloaded by ops, say), or none that could be told.
        case unrecognized
    }

    /// The allocator whose `malloc` this process calls: the library, of glibc's and mimalloc's,
    /// whose own `malloc` is the one the dynamic linker bound for the whole process. The worker
    /// names it in its start line, so what serves its allocations is visible where ops look. (By
    /// symbol addresses: Swift's Glibc module does not expose `dladdr`.)
    public static let allocator: Allocator = {
        #if canImport(Glibc)
        guard let global = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc") else { return .unrecognized }
        /// Whether `library`, when loaded, is where the process's `malloc` comes from.
        func serves(_ library: String) -> Bool {
            guard let handle = dlopen(library, RTLD_NOW | RTLD_NOLOAD) else { return false }
            defer { dlclose(handle) }
            return dlsym(handle, "malloc") == global
        }
        if serves("libc.so.6") { return .glibc }
        if serves("libmimalloc.so.2") { return .mimalloc }
        return .unrecognized
        #else
        return .unrecognized
        #endif
    }()

    #if canImport(Glibc)
    /// glibc's `mallopt`, looked up at run time: `<malloc.h>` is not part of Swift's Glibc module.
    private static let mallopt: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    /// `M_MMAP_THRESHOLD` of `<malloc.h>` (part of glibc's ABI).
    private static let mmapThresholdParameter: Int32 = -3
    #endif
}
