/*
 * c-example: a linkwright provider plugin written in plain C against
 * linkwright_plugin.h alone, for a tiny made-up network "shop.example".
 *
 *   config:   {"affiliate_id":"abc123"}   (1 to 32 letters or digits)
 *   input:    https://shop.example/item/<id>[/...][?...][#...]
 *   template: https://track.shop.example/click?aff=<affiliate_id>&item=<id>&sub=
 *             followed by the click sub-ID, then "" (no suffix).
 *
 * Build (from the repository root):
 *   cc -std=c11 -Wall -Wextra -Werror -fPIC -shared -I plugins/sdk/include \
 *      -o libc_example.so examples/c-plugin/example_plugin.c
 *
 * C cannot unwind, so every entry point trivially "catches panics" and the
 * descriptor sets LW_PLUGIN_FLAG_CATCHES_PANICS. Every function checks each
 * pointer it is given and never reads a struct field beyond the struct's
 * `size`. An instance is immutable after instance_new, so `build` is safe to
 * call from several threads at once.
 */
#include "linkwright_plugin.h"

#include <stdlib.h>
#include <string.h>

#define CE_NAME "c-example"
#define CE_VERSION "0.1.0"
#define CE_HOST "shop.example"
#define CE_AFFILIATE_ID_MAX 32u
#define CE_SUBID_MAX_LEN 40u

/* The string literal `s` as a pointer and a length, without its NUL. */
#define CE_LIT(s) (const uint8_t *)(s), sizeof(s) - 1

typedef struct ce_instance {
    char affiliate_id[CE_AFFILIATE_ID_MAX + 1];
    size_t affiliate_id_len;
} ce_instance;

/* ---- output ------------------------------------------------------------------ */

/* Appends `len` bytes to `field`, if the host gave a usable lw_output. */
static void ce_write(const lw_output *out, uint32_t field, const uint8_t *ptr, size_t len)
{
    if (out == NULL || out->size < sizeof(lw_output) || out->write == NULL) {
        return;
    }
    if (ptr == NULL) {
        if (len != 0) {
            return;
        }
        ptr = (const uint8_t *)"";
    }
    out->write(out->ctx, field, ptr, len);
}

static void ce_write_cstr(const lw_output *out, uint32_t field, const char *s)
{
    ce_write(out, field, (const uint8_t *)s, strlen(s));
}

/* Writes `message` as the error and returns `status`. */
static int32_t ce_fail(const lw_output *out, int32_t status, const char *message)
{
    ce_write_cstr(out, LW_FIELD_ERROR, message);
    return status;
}

/* ---- small byte-string helpers -------------------------------------------------- */

static int ce_is_alnum(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 3986 "unreserved": safe to copy into a query value as is. */
static int ce_is_unreserved(uint8_t c)
{
    return ce_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int ce_is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Does s[0..len) start with the NUL-terminated `prefix`? */
static int ce_starts_with(const uint8_t *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* ---- configuration ---------------------------------------------------------------- */

/*
 * Finds the string value of the "affiliate_id" key in a JSON object, just
 * enough for this example: the key, optional whitespace, ':', optional
 * whitespace, '"', the value, '"'. Sets *value and *value_len to the raw bytes
 * between the quotes. Returns 0 if there is no such key with a string value.
 */
static int ce_find_affiliate_id(const uint8_t *json, size_t len, const uint8_t **value,
                                size_t *value_len)
{
    static const char key[] = "\"affiliate_id\"";
    const size_t key_len = sizeof(key) - 1;
    size_t i = 0;

    while (i < len && ce_is_space(json[i])) {
        i++;
    }
    if (i == len || json[i] != '{') {
        return 0;
    }
    for (; i + key_len <= len; i++) {
        size_t j;
        size_t start;
        if (memcmp(json + i, key, key_len) != 0) {
            continue;
        }
        j = i + key_len;
        while (j < len && ce_is_space(json[j])) {
            j++;
        }
        if (j == len || json[j] != ':') {
            continue; /* the text appeared as a value, not as a key */
        }
        j++;
        while (j < len && ce_is_space(json[j])) {
            j++;
        }
        if (j == len || json[j] != '"') {
            return 0; /* the key is there, its value is not a string */
        }
        start = ++j;
        while (j < len && json[j] != '"') {
            if (json[j] == '\\') {
                j++; /* skip the escaped byte; it fails validation anyway */
            }
            j++;
        }
        if (j >= len) {
            return 0; /* unterminated string */
        }
        *value = json + start;
        *value_len = j - start;
        return 1;
    }
    return 0;
}

static int32_t ce_init(const lw_output *out)
{
    (void)out;
    return LW_STATUS_OK;
}

static int32_t ce_instance_new(lw_str config_json, const lw_output *out, void **instance)
{
    const uint8_t *id = NULL;
    size_t id_len = 0;
    size_t i;
    ce_instance *inst;

    if (instance == NULL) {
        return ce_fail(out, LW_STATUS_INVALID_INPUT, "instance out-pointer is null");
    }
    *instance = NULL;
    if (config_json.ptr == NULL && config_json.len != 0) {
        return ce_fail(out, LW_STATUS_INVALID_INPUT, "config is a null pointer");
    }
    if (config_json.len == 0
        || !ce_find_affiliate_id(config_json.ptr, config_json.len, &id, &id_len)) {
        return ce_fail(out, LW_STATUS_CONFIG_REJECTED,
                       "config: missing \"affiliate_id\" (a string, e.g. "
                       "{\"affiliate_id\":\"abc123\"})");
    }
    if (id_len == 0 || id_len > CE_AFFILIATE_ID_MAX) {
        return ce_fail(out, LW_STATUS_CONFIG_REJECTED,
                       "config: \"affiliate_id\" must be 1 to 32 letters or digits");
    }
    for (i = 0; i < id_len; i++) {
        if (!ce_is_alnum(id[i])) {
            return ce_fail(out, LW_STATUS_CONFIG_REJECTED,
                           "config: \"affiliate_id\" must be 1 to 32 letters or digits");
        }
    }

    inst = malloc(sizeof *inst);
    if (inst == NULL) {
        return ce_fail(out, LW_STATUS_INTERNAL, "out of memory");
    }
    memcpy(inst->affiliate_id, id, id_len);
    inst->affiliate_id[id_len] = '\0';
    inst->affiliate_id_len = id_len;
    *instance = inst;
    return LW_STATUS_OK;
}

static void ce_instance_free(void *instance)
{
    free(instance);
}

/* ---- build -------------------------------------------------------------------------- */

static int32_t ce_build(const void *instance, const lw_build_request *request,
                        lw_template_info *info, const lw_output *out)
{
    static const char https_prefix[] = "https://" CE_HOST "/";
    static const char http_prefix[] = "http://" CE_HOST "/";
    static const char item_prefix[] = "/item/";
    const ce_instance *inst = instance;
    const uint8_t *input;
    size_t input_len;
    const uint8_t *path;
    size_t path_len;
    const uint8_t *id;
    size_t id_len = 0;
    size_t i;

    if (inst == NULL || request == NULL || info == NULL) {
        return ce_fail(out, LW_STATUS_INVALID_INPUT, "null instance, request or info pointer");
    }
    if (request->size < sizeof(lw_build_request)) {
        return ce_fail(out, LW_STATUS_INVALID_INPUT, "lw_build_request is smaller than ABI v1");
    }
    input = request->input.ptr;
    input_len = request->input.len;
    if (input == NULL && input_len != 0) {
        return ce_fail(out, LW_STATUS_INVALID_INPUT, "input is a null pointer");
    }

    /* Only shop.example URLs are ours; anything else goes to the next provider. */
    if (input_len != 0 && ce_starts_with(input, input_len, https_prefix)) {
        path = input + (sizeof(https_prefix) - 2); /* keep the '/' */
    } else if (input_len != 0 && ce_starts_with(input, input_len, http_prefix)) {
        path = input + (sizeof(http_prefix) - 2);
    } else {
        return ce_fail(out, LW_STATUS_DECLINED, "not a " CE_HOST " URL");
    }
    path_len = input_len - (size_t)(path - input);

    /* /item/<id>, the id running to the next '/', '?' or '#'. */
    if (!ce_starts_with(path, path_len, item_prefix)) {
        return ce_fail(out, LW_STATUS_NOT_A_PRODUCT_URL,
                       "not a " CE_HOST " product page: the path must be /item/<id>");
    }
    id = path + (sizeof(item_prefix) - 1);
    while (id_len < path_len - (sizeof(item_prefix) - 1) && id[id_len] != '/'
           && id[id_len] != '?' && id[id_len] != '#') {
        id_len++;
    }
    if (id_len == 0) {
        return ce_fail(out, LW_STATUS_NOT_A_PRODUCT_URL,
                       "not a " CE_HOST " product page: the item id is empty");
    }
    for (i = 0; i < id_len; i++) {
        if (!ce_is_unreserved(id[i])) {
            return ce_fail(out, LW_STATUS_INVALID_PRODUCT_ID,
                           "the item id may hold only letters, digits and -._~");
        }
    }

    if (info->size >= sizeof(lw_template_info)) {
        info->subid_max_len = CE_SUBID_MAX_LEN;
        info->subid_encoding = LW_SUBID_ALPHANUMERIC;
    }
    ce_write(out, LW_FIELD_PREFIX, CE_LIT("https://track." CE_HOST "/click?aff="));
    ce_write(out, LW_FIELD_PREFIX, (const uint8_t *)inst->affiliate_id, inst->affiliate_id_len);
    ce_write(out, LW_FIELD_PREFIX, CE_LIT("&item="));
    ce_write(out, LW_FIELD_PREFIX, id, id_len);
    ce_write(out, LW_FIELD_PREFIX, CE_LIT("&sub="));
    ce_write(out, LW_FIELD_SUFFIX, CE_LIT(""));
    ce_write(out, LW_FIELD_DESTINATION, input, input_len);
    ce_write(out, LW_FIELD_MARKETPLACE, CE_LIT(CE_HOST));
    return LW_STATUS_OK;
}

static int32_t ce_describe(const void *instance, const lw_output *out)
{
    if (instance == NULL) {
        return ce_fail(out, LW_STATUS_INVALID_INPUT, "null instance");
    }
    ce_write(out, LW_FIELD_DESCRIPTION, CE_LIT("{\"hosts\":[\"" CE_HOST "\"]}"));
    return LW_STATUS_OK;
}

/* ---- the descriptor and the entry symbol ------------------------------------------- */

static const lw_plugin_descriptor ce_descriptor = {
    .magic = LW_PLUGIN_MAGIC,
    .size = (uint32_t)sizeof(lw_plugin_descriptor),
    .abi_major = (uint16_t)LW_ABI_MAJOR,
    .abi_minor = (uint16_t)LW_ABI_MINOR,
    .flags = LW_PLUGIN_FLAG_CATCHES_PANICS,
    .name = { CE_LIT(CE_NAME) },
    .version = { CE_LIT(CE_VERSION) },
    .init = ce_init,
    .instance_new = ce_instance_new,
    .instance_free = ce_instance_free,
    .build = ce_build,
    .describe = ce_describe,
};

__attribute__((visibility("default"))) const lw_plugin_descriptor *linkwright_plugin_v1(void);

__attribute__((visibility("default"))) const lw_plugin_descriptor *linkwright_plugin_v1(void)
{
    return &ce_descriptor;
}
