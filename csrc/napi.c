/*
 * nsbox - napi.c: how Bun reaches the helper. The helper is a Node-API addon
 * (process.dlopen): its one exported symbol, napi_register_module_v1, gives
 * JavaScript three functions:
 *   sys(nr, a, b, c, d, e, f)  a raw system call: its result, or -errno
 *   call(fn, args)             nsb_call (csrc/host_calls.c): args a BigInt64Array
 *   addr(typedArray)           the address of a typed array's memory
 *
 * Why Node-API and not bun:ffi: bun:ffi compiles a trampoline with TinyCC for
 * each function it binds, at every start. Loading bun:ffi, binding libc's
 * syscall and the helper's nsb_call cost a start ~2.3 ms and ~1.5 MiB of peak
 * RSS more than loading this addon (hello-world probes, bench/trace-notes.md).
 *
 * Node-API's functions are Bun's own (exported by the executable): bound when
 * the addon is loaded (-z now), never called from a cloned child.
 */

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
#define NAPI_OK 0
#define NAPI_AUTO_LENGTH ((size_t)-1)

/* Bun's, so not hidden: resolved against the executable when the addon loads. */
#define NAPI_EXTERN __attribute__((visibility("default"))) extern
NAPI_EXTERN napi_status napi_get_cb_info(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                                         napi_value *this_arg, void **data);
NAPI_EXTERN napi_status napi_get_value_int64(napi_env env, napi_value value, i64 *result);
NAPI_EXTERN napi_status napi_create_int64(napi_env env, i64 value, napi_value *result);
NAPI_EXTERN napi_status napi_get_typedarray_info(napi_env env, napi_value typedarray, int *type, size_t *length, void **data,
                                                 napi_value *arraybuffer, size_t *byte_offset);
NAPI_EXTERN napi_status napi_create_function(napi_env env, const char *name, size_t length, napi_callback cb, void *data,
                                             napi_value *result);
NAPI_EXTERN napi_status napi_set_named_property(napi_env env, napi_value object, const char *name, napi_value value);

static napi_value number(napi_env env, i64 v) {
    napi_value r = NULL;
    napi_create_int64(env, v, &r);
    return r;
}

/* Integer arguments; a missing or non-number one reads as 0. */
static void int_args(napi_env env, napi_callback_info info, i64 *out, size_t n) {
    napi_value argv[7];
    size_t argc = n;
    for (size_t i = 0; i < n; i++) out[i] = 0;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != NAPI_OK) return;
    for (size_t i = 0; i < argc && i < n; i++)
        if (napi_get_value_int64(env, argv[i], &out[i]) != NAPI_OK) out[i] = 0;
}

/* The memory of a typed array (Uint8Array, BigInt64Array, ...), or NULL. */
static void *typed_data(napi_env env, napi_value v) {
    void *data = NULL;
    size_t length = 0;
    if (napi_get_typedarray_info(env, v, NULL, &length, &data, NULL, NULL) != NAPI_OK) return NULL;
    return data;
}

static napi_value js_sys(napi_env env, napi_callback_info info) {
    i64 a[7];
    int_args(env, info, a, 7);
    return number(env, nsb_syscall6((long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4], (long)a[5], (long)a[6]));
}

static napi_value js_call(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    size_t argc = 2;
    i64 fn = 0;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != NAPI_OK || argc < 2) return number(env, -EINVAL);
    if (napi_get_value_int64(env, argv[0], &fn) != NAPI_OK) return number(env, -EINVAL);
    const i64 *args = (const i64 *)typed_data(env, argv[1]);
    if (!args) return number(env, -EINVAL);
    return number(env, nsb_call((int)fn, args));
}

static napi_value js_addr(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    size_t argc = 1;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != NAPI_OK || argc < 1) return number(env, 0);
    return number(env, (i64)(long)typed_data(env, argv[0]));
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
    napi_value f;
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f) == NAPI_OK) napi_set_named_property(env, exports, name, f);
}

NSB_EXPORT napi_value napi_register_module_v1(napi_env env, napi_value exports) {
    export_fn(env, exports, "sys", js_sys);
    export_fn(env, exports, "call", js_call);
    export_fn(env, exports, "addr", js_addr);
    return exports;
}
