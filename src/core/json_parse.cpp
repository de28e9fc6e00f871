#include "core/json_parse.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <limits>
#include <new>

namespace dmr::core {
namespace {

using json = nlohmann::json;

class TokenSax : public nlohmann::json_sax<json> {
public:
    TokenSax(JsonParse &out, const JsonParseLimits &limits) : out_(out), limits_(limits) {}

    bool null() override { return push(JsonToken::Kind::Null); }
    bool boolean(bool value) override
    {
        return push(value ? JsonToken::Kind::True : JsonToken::Kind::False);
    }
    bool number_integer(number_integer_t value) override
    {
        JsonToken t{JsonToken::Kind::Integer, 0, {}};
        t.integer = value;
        return push(t);
    }
    bool number_unsigned(number_unsigned_t value) override
    {
        JsonToken t{JsonToken::Kind::Integer, 0, {}};
        if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            t.kind = JsonToken::Kind::Float;
            t.number = static_cast<double>(value);
        }
        else {
            t.integer = static_cast<int64_t>(value);
        }
        return push(t);
    }
    bool number_float(number_float_t value, const string_t &) override
    {
        JsonToken t{JsonToken::Kind::Float, 0, {}};
        t.number = value;
        return push(t);
    }
    bool string(string_t &value) override { return text(JsonToken::Kind::String, value); }
    bool binary(binary_t &) override { return false; }   // not produced by the text reader
    bool key(string_t &value) override { return text(JsonToken::Kind::Key, value); }
    bool start_object(std::size_t) override { return open(JsonToken::Kind::BeginObject); }
    bool end_object() override { depth_--; return push(JsonToken::Kind::EndObject); }
    bool start_array(std::size_t) override { return open(JsonToken::Kind::BeginArray); }
    bool end_array() override { depth_--; return push(JsonToken::Kind::EndArray); }

    bool parse_error(std::size_t position, const std::string &,
                     const nlohmann::detail::exception &ex) override
    {
        out_.error = JsonParse::Error::Syntax;
        out_.position = position;
        // "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
        std::string_view what = ex.what();
        size_t bracket = what.find("] ");
        if (what.substr(0, 1) == "[" && bracket != std::string_view::npos)
            what.remove_prefix(bracket + 2);
        out_.message.assign(what.data(), what.size());
        return false;
    }

private:
    bool push(JsonToken::Kind kind) { return push(JsonToken{kind, 0, {}}); }
    bool push(const JsonToken &token)
    {
        if (limits_.should_stop != nullptr && (++polls_ & 1023u) == 0 && limits_.should_stop()) {
            out_.error = JsonParse::Error::Stopped;
            out_.message = "stopped: the call ran out of time";
            return false;
        }
        out_.tokens.push_back(token);
        return true;
    }
    bool text(JsonToken::Kind kind, const std::string &value)
    {
        JsonToken t{kind, static_cast<uint32_t>(value.size()), {}};
        t.offset = out_.strings.size();
        out_.strings += value;
        return push(t);
    }
    bool open(JsonToken::Kind kind)
    {
        if (++depth_ > limits_.max_depth) {
            out_.error = JsonParse::Error::TooDeep;
            out_.message = "nesting of " + std::to_string(depth_) + " is too deep";
            return false;
        }
        return push(kind);
    }

    JsonParse &out_;
    const JsonParseLimits &limits_;
    int depth_ = 0;
    unsigned polls_ = 0;
};

} // namespace

JsonParse parse_json(std::string_view text, const JsonParseLimits &limits)
{
    JsonParse out;
    if (text.size() > limits.max_bytes) {
        out.error = JsonParse::Error::TooLarge;
        out.message = "JSON text of " + std::to_string(text.size()) +
                      " bytes is larger than the limit of " + std::to_string(limits.max_bytes) +
                      " bytes";
        return out;
    }
    try {
        TokenSax sax(out, limits);
        bool ok = json::sax_parse(text.begin(), text.end(), &sax);
        if (!ok && out.error == JsonParse::Error::None) {
            out.error = JsonParse::Error::Syntax;
            out.message = "syntax error";
        }
    }
    catch (const std::bad_alloc &) {
        out.error = JsonParse::Error::NoMemory;
        out.message = "not enough memory to parse the JSON text";
    }
    catch (const std::exception &e) {
        out.error = JsonParse::Error::Syntax;
        out.message = e.what();
    }
    if (out.error != JsonParse::Error::None) {
        out.tokens.clear();
        out.tokens.shrink_to_fit();
        out.strings.clear();
        out.strings.shrink_to_fit();
    }
    return out;
}

} // namespace dmr::core
