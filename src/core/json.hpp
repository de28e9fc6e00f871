// A small streaming JSON writer for log records. Contract: whatever bytes it
// is given, the output is one line of valid JSON in valid UTF-8: control
// characters are escaped, invalid UTF-8 bytes become U+FFFD, and commas and
// nesting are tracked by the writer, not by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dmr::core {

// Appends `text` as a JSON string literal (quotes included) to `out`.
void append_json_string(std::string &out, std::string_view text);

class JsonWriter {
public:
    explicit JsonWriter(std::string &out) : out_(out) {}
    // Forgets the nesting state (the output string is the caller's to clear).
    void reset() { depth_ = 0; after_key_ = false; }

    void begin_object() { value_prefix(); out_ += '{'; push(); }
    void end_object() { pop(); out_ += '}'; }
    void begin_array() { value_prefix(); out_ += '['; push(); }
    void end_array() { pop(); out_ += ']'; }
    // Inside an object: the next value's name.
    void key(std::string_view name);

    void string(std::string_view value) { value_prefix(); append_json_string(out_, value); }
    void integer(int64_t value);
    void number(double value);   // NaN and infinities become null
    void boolean(bool value) { value_prefix(); out_ += value ? "true" : "false"; }
    void null() { value_prefix(); out_ += "null"; }
    // A value the caller has already formatted as valid JSON.
    void raw(std::string_view json) { value_prefix(); out_.append(json.data(), json.size()); }

    // Where the writer stands between two values, to take back a value that
    // turned out too large: rewind() restores the output size and the comma
    // state of that point (the caller only rewinds to the depth it marked).
    struct Mark {
        size_t size;
        int depth;
        bool after_key;
        bool first;
    };
    Mark mark() const
    {
        return {out_.size(), depth_, after_key_,
                depth_ > 0 && depth_ <= kMaxDepth ? first_[depth_ - 1] : false};
    }
    void rewind(const Mark &m)
    {
        out_.resize(m.size);
        depth_ = m.depth;
        after_key_ = m.after_key;
        if (depth_ > 0 && depth_ <= kMaxDepth)
            first_[depth_ - 1] = m.first;
    }
    size_t size() const { return out_.size(); }

    // Depth of open objects/arrays; nesting beyond kMaxDepth is the caller's
    // to avoid (the writer still produces valid output up to 64 levels).
    int depth() const { return depth_; }
    static constexpr int kMaxDepth = 64;

private:
    void value_prefix();
    void push() { if (depth_ < kMaxDepth) first_[depth_] = true; depth_++; after_key_ = false; }
    void pop() { depth_--; }

    std::string &out_;
    int depth_ = 0;
    bool after_key_ = false;
    bool first_[kMaxDepth] = {};
};

} // namespace dmr::core
