// tokr's CUDA runtime addon: device memory, fatbin modules and launches through the CUDA runtime
// API, linked statically (libcudart_static.a) so the .node file has no CUDA library dependency and
// loads on machines without a GPU or driver. Every device call first checks for a device and
// throws a JS Error with code ERR_NO_CUDA_DEVICE (and cudaError/cudaErrorName) instead of crashing.
// Modules are fatbins compiled by nvcc ahead of time and loaded with cudaLibraryLoadData, so this
// addon is built once and serves every compiled program.
#include <cuda_runtime.h>
#include <napi.h>

#include <string>
#include <vector>

namespace {

struct DeviceState {
  bool checked = false;
  cudaError_t err = cudaSuccess;
  int count = 0;
};
DeviceState g_dev;

Napi::Error cudaError(Napi::Env env, const char* code, cudaError_t e, const std::string& what) {
  Napi::Error err = Napi::Error::New(env, what + ": " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
  err.Set("code", Napi::String::New(env, code));
  err.Set("cudaError", Napi::Number::New(env, static_cast<int>(e)));
  err.Set("cudaErrorName", Napi::String::New(env, cudaGetErrorName(e)));
  return err;
}

// Cached: the runtime's answer does not change within a process.
bool requireDevice(Napi::Env env) {
  if (!g_dev.checked) {
    g_dev.err = cudaGetDeviceCount(&g_dev.count);
    g_dev.checked = true;
  }
  if (g_dev.err != cudaSuccess || g_dev.count == 0) {
    cudaError_t e = g_dev.err != cudaSuccess ? g_dev.err : cudaErrorNoDevice;
    cudaError(env, "ERR_NO_CUDA_DEVICE", e, "no CUDA device").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool check(Napi::Env env, cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  cudaError(env, "ERR_CUDA", e, what).ThrowAsJavaScriptException();
  return false;
}

void* ptrArg(const Napi::Value& v) { return v.As<Napi::External<void>>().Data(); }

Napi::Value RuntimeVersion(const Napi::CallbackInfo& info) {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return Napi::Number::New(info.Env(), v);
}

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
  if (!requireDevice(info.Env())) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), g_dev.count);
}

Napi::Value DeviceName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  cudaDeviceProp p;
  if (!check(env, cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties")) return env.Undefined();
  return Napi::String::New(env, std::string(p.name) + " (sm_" + std::to_string(p.major * 10 + p.minor) + ")");
}

// alloc(bytes) -> External device pointer (freed with free()).
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  void* p = nullptr;
  size_t n = static_cast<size_t>(info[0].As<Napi::Number>().Int64Value());
  if (!check(env, cudaMalloc(&p, n ? n : 1), "cudaMalloc")) return env.Undefined();
  return Napi::External<void>::New(env, p);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  check(env, cudaFree(ptrArg(info[0])), "cudaFree");
  return env.Undefined();
}

// upload(ptr, Uint8Array)
Napi::Value Upload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  auto a = info[1].As<Napi::Uint8Array>();
  check(env, cudaMemcpy(ptrArg(info[0]), a.Data(), a.ByteLength(), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  return env.Undefined();
}

// download(ptr, bytes) -> Uint8Array
Napi::Value Download(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  size_t n = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  auto out = Napi::Uint8Array::New(env, n);
  if (!check(env, cudaMemcpy(out.Data(), ptrArg(info[0]), n, cudaMemcpyDeviceToHost), "cudaMemcpy D2H"))
    return env.Undefined();
  return out;
}

// loadModule(fatbin: Uint8Array) -> External library handle (lives as long as the process).
Napi::Value LoadModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  auto a = info[0].As<Napi::Uint8Array>();
  // The image must stay valid while loading only; copy so JS may drop its buffer.
  std::vector<unsigned char> image(a.Data(), a.Data() + a.ByteLength());
  cudaLibrary_t lib = nullptr;
  if (!check(env, cudaLibraryLoadData(&lib, image.data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
             "cudaLibraryLoadData"))
    return env.Undefined();
  return Napi::External<void>::New(env, lib);
}

// launch(module, entry, grid[3], block[3], buffers: External[], symbols: number[])
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  auto lib = static_cast<cudaLibrary_t>(ptrArg(info[0]));
  std::string entry = info[1].As<Napi::String>();
  auto g = info[2].As<Napi::Array>();
  auto b = info[3].As<Napi::Array>();
  auto bufs = info[4].As<Napi::Array>();
  auto syms = info[5].As<Napi::Array>();
  cudaKernel_t k = nullptr;
  if (!check(env, cudaLibraryGetKernel(&k, lib, entry.c_str()), "cudaLibraryGetKernel")) return env.Undefined();
  std::vector<void*> ptrs(bufs.Length());
  std::vector<int> ints(syms.Length());
  std::vector<void*> args;
  for (uint32_t i = 0; i < bufs.Length(); i++) {
    ptrs[i] = ptrArg(bufs.Get(i));
    args.push_back(&ptrs[i]);
  }
  for (uint32_t i = 0; i < syms.Length(); i++) {
    ints[i] = syms.Get(i).As<Napi::Number>().Int32Value();
    args.push_back(&ints[i]);
  }
  auto u = [](Napi::Array a, uint32_t i) { return a.Get(i).As<Napi::Number>().Uint32Value(); };
  dim3 grid(u(g, 0), u(g, 1), u(g, 2)), block(u(b, 0), u(b, 1), u(b, 2));
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return env.Undefined();
  check(env, cudaLaunchKernel(reinterpret_cast<const void*>(k), grid, block, args.data(), 0, nullptr),
        "cudaLaunchKernel");
  return env.Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!requireDevice(env)) return env.Undefined();
  check(env, cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("runtimeVersion", Napi::Function::New(env, RuntimeVersion));
  exports.Set("deviceCount", Napi::Function::New(env, DeviceCount));
  exports.Set("deviceName", Napi::Function::New(env, DeviceName));
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("loadModule", Napi::Function::New(env, LoadModule));
  exports.Set("launch", Napi::Function::New(env, Launch));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize));
  return exports;
}

}  // namespace

NODE_API_MODULE(tokr_cuda, Init)
