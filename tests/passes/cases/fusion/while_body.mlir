// RUN: fusion dce
// Kernels form inside loop regions too: the predicate's reduction and the body's chain
// are fused ops in their regions, reading the loop's block arguments.
func.func @main(%x: tensor<8xf64>) -> tensor<8xf64> {
  %w = "gj.while"(%x) ({
  ^bb0(%a: tensor<8xf64>):
    %s = "gj.reduce_sum"(%a) {axes = [0], keepdims = false} : (tensor<8xf64>) -> tensor<f64>
    %ten = "gj.constant"() {value = dense<10.0> : tensor<f64>} : () -> tensor<f64>
    %go = "gj.less"(%s, %ten) : (tensor<f64>, tensor<f64>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%b: tensor<8xf64>):
    %half = "gj.constant"() {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
    %e = "gj.exp"(%b) : (tensor<8xf64>) -> tensor<8xf64>
    %m = "gj.mul"(%e, %half) : (tensor<8xf64>, tensor<f64>) -> tensor<8xf64>
    %n = "gj.add"(%m, %b) : (tensor<8xf64>, tensor<8xf64>) -> tensor<8xf64>
    "gj.yield"(%n) : (tensor<8xf64>) -> ()
  }) : (tensor<8xf64>) -> tensor<8xf64>
  func.return %w : tensor<8xf64>
}
// CHECK:      "gj.while"(%arg0
// CHECK-NEXT: ^bb0([[A:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[S:%[0-9]+]] = "gj.fused"([[A]]) ({
// CHECK:          "gj.reduce_sum"
// CHECK:        [[GO:%[0-9]+]] = "gj.fused"([[S]]) ({
// CHECK:          "gj.less"
// CHECK:        "gj.condition"([[GO]]
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0([[B:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[N:%[0-9]+]] = "gj.fused"([[B]]) ({
// CHECK:          "gj.exp"
// CHECK-NEXT:     "gj.constant"
// CHECK-NEXT:     "gj.mul"
// CHECK-NEXT:     "gj.add"
// CHECK-NEXT:     "gj.yield"
// CHECK-NEXT:   }
// CHECK-NEXT:   "gj.yield"([[N]]
