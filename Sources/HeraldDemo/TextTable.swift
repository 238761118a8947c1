/// A plain-text table whose columns line up in a terminal, also with diacritics (combining marks
/// take no column) and Chinese characters (two columns each).
public enum TextTable {
    /// - Parameters:
    ///   - cells: rows of cells, the first one the header.
    ///   - rightAligned: the columns to align right (numbers).
    ///   - separatorAfter: row indexes after which a rule is drawn.
    public static func render(_ cells: [[String]], rightAligned: Set<Int> = [], separatorAfter: Set<Int> = [0]) -> String {
        let columns = cells.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in cells { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], displayWidth(cell)) } }
        var lines: [String] = []
        for (index, row) in cells.enumerated() {
            var parts: [String] = []
            for i in 0..<columns {
                let cell = i < row.count ? row[i] : ""
                let pad = String(repeating: " ", count: widths[i] - displayWidth(cell))
                parts.append(rightAligned.contains(i) ? pad + cell : cell + pad)
            }
            lines.append(trimTrailing(parts.joined(separator: "  ")))
            if separatorAfter.contains(index) {
                lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Terminal columns `s` takes: combining marks 0, East Asian wide characters 2, others 1.
    public static func displayWidth(_ s: some StringProtocol) -> Int {
        var width = 0
        for scalar in s.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .nonspacingMark, .enclosingMark, .format: continue
            default: break
            }
            let v = scalar.value
            let wide = (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
                || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
                || (0xFFE0...0xFFE6).contains(v) || (0x1F300...0x1F64F).contains(v) || (0x20000...0x3FFFD).contains(v)
            width += wide ? 2 : 1
        }
        return width
    }

    /// `s` cut to at most `width` columns (with `…` when cut), then padded with spaces to `width`.
    public static func fit(_ s: String, _ width: Int) -> String {
        if displayWidth(s) <= width { return s + String(repeating: " ", count: width - displayWidth(s)) }
        var out = ""
        var used = 0
        for ch in s {
            let w = displayWidth(String(ch))
            if used + w > width - 1 { break }
            out.append(ch)
            used += w
        }
        return out + "…" + String(repeating: " ", count: max(0, width - used - 1))
    }

    private static func trimTrailing(_ s: String) -> String {
        var s = s
        while s.last == " " { s.removeLast() }
        return s
    }
}
