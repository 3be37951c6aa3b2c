// RUN: fusion fusion dce
// A second fusion run leaves kernels alone: nothing is fused inside a fused op, and a
// loop body's kernel is not wrapped again either.
func.func @main(%x: tensor<8xf64>) -> tensor<8xf64> {
  %e = "gj.exp"(%x) : (tensor<8xf64>) -> tensor<8xf64>
  %t = "gj.tanh"(%e) : (tensor<8xf64>) -> tensor<8xf64>
  %w = "gj.while"(%t) ({
  ^bb0(%a: tensor<8xf64>):
    %s = "gj.reduce_sum"(%a) {axes = [0], keepdims = false} : (tensor<8xf64>) -> tensor<f64>
    %ten = "gj.constant"() {value = dense<10.0> : tensor<f64>} : () -> tensor<f64>
    %go = "gj.less"(%s, %ten) : (tensor<f64>, tensor<f64>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%b: tensor<8xf64>):
    %n = "gj.exp"(%b) : (tensor<8xf64>) -> tensor<8xf64>
    "gj.yield"(%n) : (tensor<8xf64>) -> ()
  }) : (tensor<8xf64>) -> tensor<8xf64>
  func.return %w : tensor<8xf64>
}
// CHECK:      [[F:%[0-9]+]] = "gj.fused"(%arg0
// CHECK-NEXT: ^bb0([[X:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[E:%[0-9]+]] = "gj.exp"([[X]]
// CHECK-NEXT:   [[T:%[0-9]+]] = "gj.tanh"([[E]]
// CHECK-NEXT:   "gj.yield"([[T]]
// CHECK:      "gj.while"([[F]]
// CHECK:      }, {
// CHECK-NEXT: ^bb0([[B:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[N:%[0-9]+]] = "gj.fused"([[B]]
// CHECK-NEXT:   ^bb0([[B2:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:     "gj.exp"([[B2]]
// CHECK-NEXT:     "gj.yield"
// CHECK-NEXT:   }
// CHECK-NEXT:   "gj.yield"([[N]]
// CHECK-NOT:  "gj.fused"
