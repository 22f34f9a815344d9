// A faas-provider FunctionDeployment (POST/PUT /system/functions) read and mapped onto a drop-in.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "src/http/json.h"

namespace unifn::http::provider {

// The one namespace functions live in, as OpenFaaS names its default.
inline constexpr const char* kNamespace = "openfaas-fn";

// A deployment as a drop-in: the function's name, the image's file name (under images_dir) and the
// drop-in's YAML text, whose values are checked when it is loaded as a file is.
struct Deployment {
  std::string name;
  std::string image;   // a file name in images_dir
  std::string nspace;  // "" or as given
  std::string yaml;    // the drop-in, image written as image_path
};

// What is wrong with a body, as a sentence naming the field; or the deployment. Fields are spelled
// as faas-provider's Go types spell them; unknown ones are ignored, as OpenFaaS does. Mapping:
// service -> name, image -> image_path, limits.memory (a Kubernetes quantity) -> memory_mb, labels
// com.openfaas.scale.min/max -> min_warm/max_instances, a GPU key in limits -> accel [cuda, cpu],
// annotations unifn.isolation / unifn.timeout_ms / unifn.accel (comma-separated) -> isolation /
// timeout_ms / accel, envVars -> env; labels and annotations kept as they are. envProcess,
// constraints, secrets, requests and readOnlyRootFilesystem are accepted (types checked) and not
// used.
std::variant<Deployment, std::string> read_deployment(const Json& body,
                                                      const std::string& images_dir);

// Why name is not a DNS label (RFC 1123: 1 to 63 of a-z, 0-9 and '-', starting and ending with a
// letter or digit), as Kubernetes and so OpenFaaS require of a function name; nullopt when it is.
std::optional<std::string> dns_label_problem(const std::string& name);

// Why name cannot be an image's file name in images_dir (empty, a path separator, "." or "..").
std::optional<std::string> image_name_problem(const std::string& name);

// A Kubernetes quantity of bytes ("64Mi", "1Gi", "128M", "67108864") in MiB, rounded up; nullopt
// when text is not one.
std::optional<std::uint64_t> quantity_mib(const std::string& text);

}  // namespace unifn::http::provider
