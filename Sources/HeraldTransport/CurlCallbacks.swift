import CCurl

// MARK: libcurl callbacks (run on the engine's thread; context is the unretained `Transfer`)

let curlWriteCallback: ccurl_data_callback = { buffer, size, count, context in
    let length = size * count
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    if let buffer, length > 0 {
        buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
            transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
    }
    return length
}

let curlHeaderCallback: ccurl_data_callback = { buffer, size, count, context in
    let length = size * count
    guard let context, let buffer else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    // Bytes only, no parsing: this runs for every header line of every answer on the transport's
    // single thread; HTTPHeaders looks names up when asked.
    buffer.withMemoryRebound(to: UInt8.self, capacity: length) { p in
        let line = UnsafeBufferPointer(start: p, count: length)
        if length >= 5, line[0] == UInt8(ascii: "H"), line[1] == UInt8(ascii: "T"), line[2] == UInt8(ascii: "T"),
           line[3] == UInt8(ascii: "P"), line[4] == UInt8(ascii: "/") {
            // A new response begins (after a 1xx or a redirect): forget the previous headers.
            transfer.headers.removeAll()
        } else if length > 2 {
            transfer.headers.append(line: line)
        }
    }
    return length
}

let curlSMTPReplyCallback: ccurl_data_callback = { buffer, size, count, context in
    let length = size * count
    guard let context, let buffer else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let line = buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: min(length, 512)), as: UTF8.self)
    }.trimmingCharacters(in: .whitespacesAndNewlines)
    // Keep the last refusal, e.g. "550 5.1.1 No such user here" (not the "221" to the QUIT
    // that may follow it).
    if line.count >= 3, line.prefix(3).allSatisfy(\.isNumber), line.first == "4" || line.first == "5" {
        transfer.lastReply = line
    }
    return length
}

let curlReadCallback: ccurl_data_callback = { buffer, size, count, context in
    guard let context, let buffer else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let room = size * count
    let remaining = transfer.upload.count - transfer.uploadOffset
    let length = min(room, remaining)
    if length > 0 {
        transfer.upload.withUnsafeBytes { bytes in
            UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + transfer.uploadOffset, byteCount: length)
        }
        transfer.uploadOffset += length
    }
    return length
}

/// Runs when a transfer's connection is ready (new, or reused once a stream or the connection
/// frees up), just before the request is sent: the last moment a start deadline can still hold
/// for certain. A transfer can wait inside libcurl for a connection of its host (the multiplexing
/// engines cap those), so the check when it is handed to libcurl is not enough. Aborting here
/// sends nothing. Otherwise this is when the request leaves, which the submission hears
/// (``TransferSubmission/onDeparture``).
let curlPrereqCallback: ccurl_prereq_callback = { context, _, _, _, _ in
    guard let context else { return Int32(CURL_PREREQFUNC_OK) }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    if transfer.submission.deadlinePassed {
        transfer.missedStartDeadline = true
        return Int32(CURL_PREREQFUNC_ABORT)
    }
    transfer.tellDeparture(true)
    return Int32(CURL_PREREQFUNC_OK)
}
